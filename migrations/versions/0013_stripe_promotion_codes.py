"""stripe promotion codes

Each voucher mirrored to Stripe gets a promotion code beside its coupon (the customer-facing code
is the voucher's); its id is kept on the voucher, indexed, so a webhook's discount finds it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('vouchers', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('stripe_promotion_code_id', sa.String(length=255), nullable=True)
        )
        batch_op.create_index(
            'ix_vouchers_stripe_promotion_code_id', ['stripe_promotion_code_id'], unique=False
        )


def downgrade():
    with op.batch_alter_table('vouchers', schema=None) as batch_op:
        batch_op.drop_index('ix_vouchers_stripe_promotion_code_id')
        batch_op.drop_column('stripe_promotion_code_id')
