"""tiers: qualification, member tier state, tier changes

The programme gets the tier policy (`tier_window`, `tier_downgrade`, `tier_grace_days`), each
member the date their tier was reached and, under `end_of_period`, the date it is held until;
`tier_changes` records every move of a member's tier (from, to, spend, reason, actor, when).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

BIGINT_PK = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade():
    with op.batch_alter_table('program', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                'tier_window', sa.String(length=20), server_default='rolling_365', nullable=False
            )
        )
        batch_op.add_column(
            sa.Column(
                'tier_downgrade', sa.String(length=20), server_default='immediate', nullable=False
            )
        )
        batch_op.add_column(
            sa.Column('tier_grace_days', sa.Integer(), server_default='0', nullable=False)
        )
        batch_op.create_check_constraint(
            'tier_window_known', "tier_window IN ('rolling_365', 'calendar_year')"
        )
        batch_op.create_check_constraint(
            'tier_downgrade_known', "tier_downgrade IN ('immediate', 'end_of_period')"
        )
        batch_op.create_check_constraint('tier_grace_days_non_negative', 'tier_grace_days >= 0')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tier_since', UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column('tier_held_until', UTC_DATETIME, nullable=True))
    op.create_table(
        'tier_changes',
        sa.Column('id', BIGINT_PK, nullable=False),
        sa.Column('member_id', sa.BigInteger(), nullable=False),
        sa.Column('from_tier', sa.String(length=50), nullable=True),
        sa.Column('to_tier', sa.String(length=50), nullable=True),
        sa.Column('spend', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.String(length=20), nullable=False),
        sa.Column('actor', sa.String(length=100), nullable=False),
        sa.Column('at', UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ['member_id'], ['members.id'], name=op.f('fk_tier_changes_member_id_members')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_tier_changes')),
    )
    with op.batch_alter_table('tier_changes', schema=None) as batch_op:
        batch_op.create_index('ix_tier_changes_member_id_id', ['member_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tier_changes_at'), ['at'], unique=False)


def downgrade():
    op.drop_table('tier_changes')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('tier_held_until')
        batch_op.drop_column('tier_since')
    with op.batch_alter_table('program', schema=None) as batch_op:
        batch_op.drop_constraint('tier_grace_days_non_negative', type_='check')
        batch_op.drop_constraint('tier_downgrade_known', type_='check')
        batch_op.drop_constraint('tier_window_known', type_='check')
        batch_op.drop_column('tier_grace_days')
        batch_op.drop_column('tier_downgrade')
        batch_op.drop_column('tier_window')
