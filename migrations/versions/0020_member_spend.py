"""members.gross_spend: the amounts of all a member's purchases, kept on write

A purchase below the next tier's threshold of gross spend cannot reach that tier, whatever the
qualification window: the purchase path then skips the qualifying-spend query. Filled here from
the purchases already recorded; kept by the purchase's balance UPDATE and by the import from
now on (`flask loyalty verify-ledger` checks it equals the purchases' sum).

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-29

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    # ADD COLUMN with a constant default: no table rebuild on either database
    op.add_column(
        'members',
        sa.Column('gross_spend', sa.BigInteger(), server_default='0', nullable=False),
    )
    op.execute(
        "UPDATE members SET gross_spend = s.total FROM"
        " (SELECT member_id, SUM(amount) AS total FROM purchases GROUP BY member_id) AS s"
        " WHERE members.id = s.member_id"
    )


def downgrade():
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('gross_spend')
