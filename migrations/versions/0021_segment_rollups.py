"""segment rollups: each member's purchase span, the purchases that used a benefit

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30

Two more derived tables for /metrics/segments (docs/design.md, "Metrics"), kept by the
`metrics_rollup` job:

- `member_spans`: per member, the days of the first, the latest and the k-th latest purchase
  (k = 2, 3, 5, 7, 9, 17, 33, 65) of the purchases the rollups hold, filled here from
  `purchase_days` (which holds the same purchases as the watermark says), so the figures stay
  exact across the upgrade without a rebuild (`rollup_state.spans_at` says they are current:
  an older job running on during the upgrade leaves them behind until the new job's next run); and the days of the j-th latest purchase that used
  a benefit as `benefit_purchases` holds them (j = 1, 2, 3, 4, 8, 16, 32), empty as it is.
- `benefit_purchases`: the member and day of each purchase that used a voucher or a reward as of
  the job's last run. Starts empty: the links it does not hold are looked up in the purchases
  (slower, as exact), until the job's first run notes them.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

#: member_spans.last{k}_day: the day of the member's k-th latest purchase
RANKS = (2, 3, 5, 7, 9, 17, 33, 65)
#: member_spans.benefit{j}_day: the day of the j-th latest purchase that used a benefit, as
#: benefit_purchases holds them (empty here: the job fills both)
BENEFIT_RANKS = (1, 2, 3, 4, 8, 16, 32)


def upgrade():
    op.create_table(
        'member_spans',
        sa.Column('member_id', sa.BigInteger(), nullable=False),
        sa.Column('first_day', sa.Date(), nullable=False),
        sa.Column('last_day', sa.Date(), nullable=False),
        *(sa.Column(f'last{k}_day', sa.Date(), nullable=True) for k in RANKS),
        *(sa.Column(f'benefit{j}_day', sa.Date(), nullable=True) for j in BENEFIT_RANKS),
        sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_spans')),
    )
    op.create_index('ix_member_spans_last_day', 'member_spans', ['last_day'])
    op.create_table(
        'benefit_purchases',
        sa.Column('purchase_id', sa.BigInteger(), nullable=False),
        sa.Column('member_id', sa.BigInteger(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint('purchase_id', name=op.f('pk_benefit_purchases')),
    )
    op.create_index(
        'ix_benefit_purchases_member_id_day', 'benefit_purchases', ['member_id', 'day']
    )
    # spans_at = updated_at: the spans hold what the rollups hold. A job of the release before
    # this one, still running during the upgrade, moves updated_at alone: the spans are then
    # behind until this release's job makes them again (and the segments answer 503 meanwhile)
    op.add_column(
        'rollup_state', sa.Column('spans_at', sa.DateTime(timezone=True), nullable=True)
    )
    if op.get_bind().dialect.name == 'postgresql':  # no job run half-way through the filling
        op.execute("SELECT 1 FROM rollup_state FOR UPDATE")
    # the spans of the purchases purchase_days holds (the same SQL as loyalty.domain.rollups)
    op.execute(
        """
        INSERT INTO member_spans (member_id, first_day, last_day, {columns})
        SELECT member_id, MIN(day), MAX(day), {days}
          FROM (SELECT member_id, day,
                       SUM(n) OVER (PARTITION BY member_id ORDER BY day DESC
                                    ROWS UNBOUNDED PRECEDING) AS since
                  FROM (SELECT member_id, day, SUM(purchases) AS n FROM purchase_days
                         GROUP BY member_id, day) d) r
         GROUP BY member_id
        """.format(
            columns=", ".join(f"last{k}_day" for k in RANKS),
            days=", ".join(f"MAX(CASE WHEN since >= {k} THEN day END)" for k in RANKS),
        )
    )
    op.execute("UPDATE rollup_state SET spans_at = updated_at")


def downgrade():
    op.drop_column('rollup_state', 'spans_at')
    op.drop_index('ix_benefit_purchases_member_id_day', table_name='benefit_purchases')
    op.drop_table('benefit_purchases')
    op.drop_index('ix_member_spans_last_day', table_name='member_spans')
    op.drop_table('member_spans')
