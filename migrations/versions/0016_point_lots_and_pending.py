"""point lots: expiry by lot and pending points

`point_lots`: one row per credit (earn, bonus, positive adjustment, reward given back), with
what is left of it (`remaining`), when it lapses (`expires_at`, null = never) and until when it
is pending (`pending_until`). Written only by loyalty/domain/ledger.py. Existing members get one
lot each holding their whole positive balance, never expiring, so the books agree from the start.
`members.pending` caches the points of their pending lots; `program.pending_days` turns pending
on.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'point_lots',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('member_id', sa.BigInteger(), nullable=False),
        sa.Column('entry_id', sa.BigInteger(), nullable=True),
        sa.Column('purchase_id', sa.BigInteger(), nullable=True),
        sa.Column('points', sa.BigInteger(), nullable=False),
        sa.Column('remaining', sa.BigInteger(), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('pending_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('points > 0', name=op.f('ck_point_lots_points_positive')),
        sa.CheckConstraint(
            'remaining >= 0 AND remaining <= points', name=op.f('ck_point_lots_remaining_in_lot')
        ),
        sa.ForeignKeyConstraint(
            ['member_id'], ['members.id'], name=op.f('fk_point_lots_member_id_members')
        ),
        sa.ForeignKeyConstraint(
            ['entry_id'], ['ledger_entries.id'], name=op.f('fk_point_lots_entry_id_ledger_entries')
        ),
        sa.ForeignKeyConstraint(
            ['purchase_id'], ['purchases.id'], name=op.f('fk_point_lots_purchase_id_purchases')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_point_lots')),
    )
    with op.batch_alter_table('point_lots', schema=None) as batch_op:
        batch_op.create_index(
            'ix_point_lots_open', ['member_id', 'expires_at', 'id'], unique=False,
            postgresql_where=sa.text('remaining > 0'), sqlite_where=sa.text('remaining > 0'),
        )
        batch_op.create_index(
            'ix_point_lots_lapsing', ['expires_at'], unique=False,
            postgresql_where=sa.text('remaining > 0 AND expires_at IS NOT NULL'),
            sqlite_where=sa.text('remaining > 0 AND expires_at IS NOT NULL'),
        )
        batch_op.create_index(
            'ix_point_lots_purchase_id', ['purchase_id'], unique=False,
            postgresql_where=sa.text('purchase_id IS NOT NULL'),
            sqlite_where=sa.text('purchase_id IS NOT NULL'),
        )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('pending', sa.BigInteger(), nullable=False, server_default='0')
        )
        batch_op.create_check_constraint('pending_non_negative', 'pending >= 0')
    with op.batch_alter_table('program', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pending_days', sa.Integer(), nullable=True))
    op.execute(
        "INSERT INTO point_lots (member_id, points, remaining, created_at) "
        "SELECT id, points, points, CURRENT_TIMESTAMP FROM members WHERE points > 0"
    )


def downgrade():
    with op.batch_alter_table('program', schema=None) as batch_op:
        batch_op.drop_column('pending_days')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_constraint('pending_non_negative', type_='check')
        batch_op.drop_column('pending')
    with op.batch_alter_table('point_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_point_lots_purchase_id')
        batch_op.drop_index('ix_point_lots_lapsing')
        batch_op.drop_index('ix_point_lots_open')
    op.drop_table('point_lots')
