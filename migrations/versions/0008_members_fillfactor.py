"""members: fillfactor 80, so that balance updates stay on their page (HOT)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23

Every purchase, return, redemption and import batch updates its member's `points`. With full
pages (fillfactor 100) PostgreSQL could almost never keep the new row version on the same page,
so each update also wrote an entry into every index of members (five): 2 of 100,045 updates were
HOT in a 1M-purchase import. Pages filled to 80 % leave room for the new versions. Only pages
written from now on are affected (run VACUUM FULL members to repack an existing table).
PostgreSQL only; SQLite has no such setting.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE members SET (fillfactor = 80)')


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE members RESET (fillfactor)')
