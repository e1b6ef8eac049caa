"""campaigns (win-back runs as a background job) and the Stripe mirror's last change time

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table('campaigns',
    sa.Column('id', ID, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('issued', sa.Integer(), nullable=False),
    sa.Column('holdout', sa.Integer(), nullable=False),
    sa.Column('last_member_id', sa.BigInteger(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('api_client_id', ID, nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind IN ('win_back')", name=op.f('ck_campaigns_kind_known')),
    sa.CheckConstraint("status IN ('pending', 'running', 'done', 'failed')", name=op.f('ck_campaigns_status_known')),
    sa.ForeignKeyConstraint(['api_client_id'], ['api_clients.id'], name=op.f('fk_campaigns_api_client_id_api_clients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaigns'))
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index('ix_campaigns_status_updated_at', ['status', 'updated_at'], unique=False)

    with op.batch_alter_table('vouchers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_updated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_index('ix_vouchers_stripe_status')
        batch_op.create_index('ix_vouchers_stripe_status_valid_until', ['stripe_status', 'valid_until'], unique=False)
    # a voucher pending before this revision is due for the sweep at once
    op.execute("UPDATE vouchers SET stripe_updated_at = created_at WHERE stripe_status IS NOT NULL")


def downgrade():
    with op.batch_alter_table('vouchers', schema=None) as batch_op:
        batch_op.drop_index('ix_vouchers_stripe_status_valid_until')
        batch_op.create_index('ix_vouchers_stripe_status', ['stripe_status'], unique=False)
        batch_op.drop_column('stripe_updated_at')

    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_index('ix_campaigns_status_updated_at')

    op.drop_table('campaigns')
