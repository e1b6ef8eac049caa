"""drop the index on purchases.occurred_at alone

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29

No query needs it: every metric reads each member's purchases up to the end of its period (the
first purchase ever, the previous period), so the periods that matter, the recent ones, scan the
table whatever the index; only old periods used it, and a scan answers them in the time a recent
one takes (retention for a month of 2024 at 1M purchases: 10 ms with it, 48 ms without; the
latest quarter 185 ms either way). Per-member lookups use (member_id, occurred_at). Meanwhile
every purchase paid for it, and an import whose rows are not in time order paid most: 1M
purchases grouped by customer imported in 14.3 s with it and 11.8 s without.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # plain DDL, not a batch: SQLite must not rebuild the table
    op.drop_index('ix_purchases_occurred_at', table_name='purchases')


def downgrade():
    op.create_index('ix_purchases_occurred_at', 'purchases', ['occurred_at'], unique=False)
