"""api keys: expiry, last use, store binding; audit trail

- `api_clients.expires_at` (the key stops working then; null: never), `last_used_at` (written
  at most once a minute per key) and `store_id` (a till key bound to one store);
- `audit_entries` indexes for the filters of `GET /audit-entries` (time; actor and time);
- `audit_entries` append-only, enforced by the database as the ledger is: a trigger refuses
  DELETE and every UPDATE but the one erasure makes, which rewrites `detail` alone (the
  member's personal values and free text taken out) with every other column unchanged
  (PostgreSQL compares `to_jsonb(NEW) - 'detail'` with `OLD`'s, so a column added later is
  covered; SQLite's `WHEN` lists the columns at migration time). A later migration that
  rebuilds `audit_entries` on SQLite (a batch) must create the trigger again.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-29

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

_PG_FUNCTION = """
    CREATE FUNCTION audit_entries_append_only() RETURNS trigger AS $$
    BEGIN
      IF TG_OP = 'UPDATE' AND to_jsonb(NEW) - 'detail' = to_jsonb(OLD) - 'detail' THEN
        RETURN NEW;
      END IF;
      RAISE EXCEPTION 'audit entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
    END $$ LANGUAGE plpgsql
"""
_PG_TRIGGER = """
    CREATE TRIGGER audit_entries_append_only
    BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()
"""


def _sqlite_triggers():
    columns = [
        c['name'] for c in sa.inspect(op.get_bind()).get_columns('audit_entries')
        if c['name'] != 'detail'
    ]
    same = ' AND '.join(f'NEW.{c} IS OLD.{c}' for c in columns)
    op.execute(
        f"""
        CREATE TRIGGER audit_entries_no_update
        BEFORE UPDATE ON audit_entries WHEN NOT ({same})
        BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END
        """
    )
    op.execute(
        """
        CREATE TRIGGER audit_entries_no_delete
        BEFORE DELETE ON audit_entries
        BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END
        """
    )


def upgrade():
    # plain ALTER TABLE ADD COLUMN (no rebuild on SQLite: other tables refer to api_clients)
    with op.batch_alter_table('api_clients', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('store_id', sa.String(length=100), nullable=True))
    op.create_index('ix_audit_entries_at', 'audit_entries', ['at'], unique=False)
    op.create_index(
        'ix_audit_entries_actor_at', 'audit_entries', ['actor', 'at'], unique=False
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
    else:
        _sqlite_triggers()


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries')
        op.execute('DROP FUNCTION IF EXISTS audit_entries_append_only()')
    else:
        op.execute('DROP TRIGGER IF EXISTS audit_entries_no_update')
        op.execute('DROP TRIGGER IF EXISTS audit_entries_no_delete')
    op.drop_index('ix_audit_entries_actor_at', table_name='audit_entries')
    op.drop_index('ix_audit_entries_at', table_name='audit_entries')
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite >= 3.35 drops a column in place (no rebuild: other tables refer to the table)
        for column in ('store_id', 'last_used_at', 'expires_at'):
            op.execute(f'ALTER TABLE api_clients DROP COLUMN {column}')
    else:
        for column in ('store_id', 'last_used_at', 'expires_at'):
            op.drop_column('api_clients', column)
