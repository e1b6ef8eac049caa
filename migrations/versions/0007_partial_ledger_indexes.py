"""partial indexes for ledger entries' return and redemption references

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23

Most ledger entries (earnings, adjustments) reference no return and no redemption; indexing
only those that do saves two index insertions per earning (the purchase hot path and imports).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # plain DDL, not a batch: SQLite must not rebuild the table (its triggers would go)
    for column in ('return_id', 'redemption_id'):
        op.drop_index(f'ix_ledger_entries_{column}', table_name='ledger_entries')
        op.create_index(
            f'ix_ledger_entries_{column}',
            'ledger_entries',
            [column],
            unique=False,
            postgresql_where=sa.text(f'{column} IS NOT NULL'),
            sqlite_where=sa.text(f'{column} IS NOT NULL'),
        )


def downgrade():
    for column in ('return_id', 'redemption_id'):
        op.drop_index(f'ix_ledger_entries_{column}', table_name='ledger_entries')
        op.create_index(f'ix_ledger_entries_{column}', 'ledger_entries', [column], unique=False)
