"""metrics rollups: purchase days and links, first purchases, cohort months, the watermark

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-29

Derived tables the metrics read instead of every purchase ever (docs/metrics.md, "How the figures
are computed"). They start empty with the watermark at 0: until the `metrics_rollup` job (or
`flask loyalty metrics-rollup`) has caught up, the metrics read the purchases past it raw, so the
figures are exact from the first request, only slower. Nothing is added to the purchases table or
its write path.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'purchase_days',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('member_id', sa.BigInteger(), nullable=False),
        sa.Column('store', sa.String(length=102), nullable=False),
        sa.Column('purchases', sa.Integer(), nullable=False),
        sa.Column('revenue', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('day', 'member_id', 'store', name=op.f('pk_purchase_days')),
    )
    op.create_index('ix_purchase_days_member_id_day', 'purchase_days', ['member_id', 'day'])
    op.create_table(
        'member_firsts',
        sa.Column('scope', sa.String(length=102), nullable=False),
        sa.Column('member_id', sa.BigInteger(), nullable=False),
        sa.Column('first_day', sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint('scope', 'member_id', name=op.f('pk_member_firsts')),
    )
    op.create_index(
        'ix_member_firsts_scope_first_day', 'member_firsts', ['scope', 'first_day']
    )
    op.create_table(
        'purchase_links',
        sa.Column('scope', sa.String(length=102), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('kind', sa.Integer(), nullable=False),
        sa.Column('prev_day', sa.Date(), nullable=False),
        sa.Column('purchases', sa.Integer(), nullable=False),
        sa.Column('revenue', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            'scope', 'day', 'kind', 'prev_day', name=op.f('pk_purchase_links')
        ),
    )
    op.create_table(
        'cohort_months',
        sa.Column('cohort', sa.Integer(), nullable=False),
        sa.Column('month', sa.Integer(), nullable=False),
        sa.Column('members', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('cohort', 'month', name=op.f('pk_cohort_months')),
    )
    op.create_table(
        'rollup_state',
        sa.Column('name', sa.String(length=50), nullable=False),
        sa.Column('watermark', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_rollup_state')),
    )
    op.create_table(
        'rollup_gaps',
        sa.Column('lo', sa.BigInteger(), nullable=False),
        sa.Column('hi', sa.BigInteger(), nullable=False),
        sa.Column('noted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('horizon', sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint('lo', name=op.f('pk_rollup_gaps')),
    )
    op.execute(
        "INSERT INTO rollup_state (name, watermark, updated_at) "
        "VALUES ('metrics', 0, CURRENT_TIMESTAMP)"
    )


def downgrade():
    op.drop_table('rollup_gaps')
    op.drop_table('rollup_state')
    op.drop_table('cohort_months')
    op.drop_table('purchase_links')
    op.drop_index('ix_member_firsts_scope_first_day', table_name='member_firsts')
    op.drop_table('member_firsts')
    op.drop_index('ix_purchase_days_member_id_day', table_name='purchase_days')
    op.drop_table('purchase_days')
