"""api keys: rotation and reusable names

A client's name is unique among the clients that are not revoked (a partial unique index), so a
revoked key's name can be given to a new key. `rotate-api-key` keeps the key it replaces in
`previous_key_hash`, accepted until `previous_key_expires_at` (the grace period).

SQLite cannot drop a UNIQUE constraint, so there the table is rebuilt. Alembic's batch mode
would rename a copy over the original, and with foreign keys on, dropping the original fails
on every row another table refers to (PRAGMA foreign_keys cannot be switched inside the
migration's transaction). So the rows are set aside, the table dropped and created anew under
its own name, and the rows put back, with the foreign-key checks deferred to COMMIT: by then
every reference finds its row again, and a real violation still fails the migration. (No
foreign key to api_clients has an ON DELETE action, which the DROP would fire.)

Downgrade: the previous keys are dropped (they stop working at once), and revoked clients that
share a name with another client are renamed `<name> #<id>` so names are unique again.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

ACTIVE = sa.text('revoked_at IS NULL')
OLD_COLUMNS = 'id, name, key_hash, key_prefix, scopes, created_at, revoked_at'


def _columns(rotation):
    columns = [
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('key_prefix', sa.String(length=12), nullable=False),
        sa.Column('scopes', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    ]
    if rotation:
        columns += [
            sa.Column('previous_key_hash', sa.String(length=64), nullable=True),
            sa.Column('previous_key_expires_at', sa.DateTime(timezone=True), nullable=True),
        ]
    return columns


def _rebuild_sqlite(rotation):
    """api_clients anew (with or without the rotation columns and the unique name), rows kept."""
    op.execute('PRAGMA defer_foreign_keys = ON')
    op.execute(f'CREATE TEMP TABLE api_clients_0012 AS SELECT {OLD_COLUMNS} FROM api_clients')
    op.drop_table('api_clients')
    constraints = [
        sa.PrimaryKeyConstraint('id', name='pk_api_clients'),
        sa.UniqueConstraint('key_hash', name='uq_api_clients_key_hash'),
    ]
    if not rotation:
        constraints.append(sa.UniqueConstraint('name', name='uq_api_clients_name'))
    op.create_table('api_clients', *_columns(rotation), *constraints)
    op.execute(
        f'INSERT INTO api_clients ({OLD_COLUMNS}) SELECT {OLD_COLUMNS} FROM api_clients_0012'
    )
    op.execute('DROP TABLE api_clients_0012')
    op.execute('PRAGMA defer_foreign_keys = OFF')


def upgrade():
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_sqlite(rotation=True)
    else:
        op.add_column('api_clients', _columns(rotation=True)[-2])
        op.add_column('api_clients', _columns(rotation=True)[-1])
        op.drop_constraint('uq_api_clients_name', 'api_clients', type_='unique')
    op.create_index(
        'ix_api_clients_previous_key_hash', 'api_clients', ['previous_key_hash'], unique=False
    )
    op.create_index(
        'uq_api_clients_name_active',
        'api_clients',
        ['name'],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade():
    op.execute(
        "UPDATE api_clients SET name = substr(name, 1, 78) || ' #' || CAST(id AS VARCHAR(20)) "
        "WHERE revoked_at IS NOT NULL AND name IN "
        "(SELECT name FROM api_clients GROUP BY name HAVING count(*) > 1)"
    )
    op.drop_index('uq_api_clients_name_active', table_name='api_clients')
    op.drop_index('ix_api_clients_previous_key_hash', table_name='api_clients')
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_sqlite(rotation=False)
    else:
        op.create_unique_constraint('uq_api_clients_name', 'api_clients', ['name'])
        op.drop_column('api_clients', 'previous_key_expires_at')
        op.drop_column('api_clients', 'previous_key_hash')
