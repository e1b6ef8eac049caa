"""earning rules, the programme's time zone, each purchase's breakdown

`earning_rules` (multipliers and bonuses with their conditions, cap, priority, stacking and
budget; soft-deleted) and `earning_rule_versions` (every definition a rule had, so a past
purchase stays explained). The programme gets its IANA `timezone` (UTC by default) and a
`rules_version` bumped by every rule change (each process caches the active rules by it). A
purchase keeps its `breakdown` and each line its `points`, so returns take back line by line.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), 'postgresql')
_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'earning_rules',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('value', sa.String(length=24), nullable=False),
        sa.Column('conditions', _JSON, nullable=False),
        sa.Column('max_points_per_purchase', sa.BigInteger(), nullable=True),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('stackable', sa.Boolean(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('budget', sa.BigInteger(), nullable=True),
        sa.Column('budget_used', sa.BigInteger(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('multiplier', 'bonus_points')", name='kind_known'),
        sa.CheckConstraint(
            'max_points_per_purchase IS NULL OR max_points_per_purchase > 0', name='cap_positive'
        ),
        sa.CheckConstraint('budget IS NULL OR budget > 0', name='budget_positive'),
        sa.CheckConstraint(
            'budget IS NULL OR (budget_used >= 0 AND budget_used <= budget)',
            name='budget_used_within_budget',
        ),
    )
    op.create_table(
        'earning_rule_versions',
        sa.Column('id', _ID, primary_key=True),
        sa.Column('rule_id', _ID, sa.ForeignKey('earning_rules.id'), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('definition', _JSON, nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('rule_id', 'version'),
    )
    with op.batch_alter_table('program', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('timezone', sa.String(length=64), nullable=False, server_default='UTC')
        )
        batch_op.add_column(
            sa.Column('rules_version', sa.BigInteger(), nullable=False, server_default='0')
        )
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('breakdown', _JSON, nullable=True))
    with op.batch_alter_table('purchase_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('points', sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('purchase_lines', schema=None) as batch_op:
        batch_op.drop_column('points')
    with op.batch_alter_table('purchases', schema=None) as batch_op:
        batch_op.drop_column('breakdown')
    with op.batch_alter_table('program', schema=None) as batch_op:
        batch_op.drop_column('rules_version')
        batch_op.drop_column('timezone')
    op.drop_table('earning_rule_versions')
    op.drop_table('earning_rules')
