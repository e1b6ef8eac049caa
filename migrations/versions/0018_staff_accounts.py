"""staff accounts: the people who sign in to the back office (/staff)

- `staff_accounts`: e-mail (unique, lower-cased), name (the audit log's actor), role
  (reports, staff, admin), password hash (werkzeug scrypt), created, last signed in, disabled,
  the session epoch (bumped at sign-out: the sessions signed in before end).
- `staff_form_nonces`: the one-time forms sent (adjust, goodwill, card replace): a second
  submit of the same form finds its nonce and does nothing.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-29

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'staff_accounts',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('role', sa.String(length=20), nullable=False),
        sa.Column('password_hash', sa.String(length=255), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_sign_in_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_accounts')),
        sa.UniqueConstraint('email', name=op.f('uq_staff_accounts_email')),
    )
    op.create_table(
        'staff_form_nonces',
        sa.Column('nonce', sa.String(length=64), nullable=False),
        sa.Column('staff_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['staff_account_id'], ['staff_accounts.id'], name=op.f('fk_staff_form_nonces_staff_account_id_staff_accounts')),
        sa.PrimaryKeyConstraint('nonce', name=op.f('pk_staff_form_nonces')),
    )
    op.create_index(op.f('ix_staff_form_nonces_staff_account_id'), 'staff_form_nonces', ['staff_account_id'], unique=False)
    op.create_index(op.f('ix_staff_form_nonces_used_at'), 'staff_form_nonces', ['used_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_staff_form_nonces_used_at'), table_name='staff_form_nonces')
    op.drop_index(op.f('ix_staff_form_nonces_staff_account_id'), table_name='staff_form_nonces')
    op.drop_table('staff_form_nonces')
    op.drop_table('staff_accounts')
