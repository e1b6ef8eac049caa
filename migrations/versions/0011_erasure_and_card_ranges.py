"""erasure and cards

Erasure that erases:

- `idempotency_records.member_id` (nullable, partial index): the one member whose rows the
  request wrote, so that erasing the member finds the stored responses (replays) to redact;
- the ledger's append-only trigger lets exactly one UPDATE through: `note` set to
  '[redacted]' with every other column unchanged (erasure redacts the notes of an erased
  member; the books, points and balances stay as they were). DELETE is still refused;
- members erased before this revision: their active cards are blocked (`member_erased`) and
  their free text (ledger notes, voucher reasons, feedback comments, card block reasons)
  redacted. Their audit details and stored responses are redacted by erasing them again
  (DELETE /members/{id} is idempotent and finishes the job).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29

"""
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

REDACTED = '[redacted]'

_PG_APPEND_ONLY = """
    CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
    BEGIN
      {allow}
      RAISE EXCEPTION 'ledger entries are append-only (% refused)', TG_OP
        USING ERRCODE = 'restrict_violation';
    END $$ LANGUAGE plpgsql
"""
# the one change allowed: erasure redacts a note, every other column as it was
_PG_ALLOW_REDACTION = f"""
      IF TG_OP = 'UPDATE' AND NEW.note = '{REDACTED}'
         AND to_jsonb(NEW) - 'note' = to_jsonb(OLD) - 'note' THEN
        RETURN NEW;
      END IF;
"""


def _sqlite_no_update(allow_redaction):
    """The SQLite trigger refusing UPDATE on ledger_entries (but the redaction of a note)."""
    when = ''
    if allow_redaction:
        columns = [
            c['name'] for c in sa.inspect(op.get_bind()).get_columns('ledger_entries')
            if c['name'] != 'note'
        ]
        same = ' AND '.join(f'NEW.{c} IS OLD.{c}' for c in columns)
        when = f"WHEN NOT (NEW.note IS '{REDACTED}' AND {same})"
    op.execute('DROP TRIGGER IF EXISTS ledger_entries_no_update')
    op.execute(
        f"""
        CREATE TRIGGER ledger_entries_no_update
        BEFORE UPDATE ON ledger_entries {when}
        BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END
        """
    )


def _finish_earlier_erasures():
    """Members erased before this revision: free text redacted, active cards blocked."""
    erased = 'member_id IN (SELECT id FROM members WHERE erased_at IS NOT NULL)'
    for table, column in (
        ('ledger_entries', 'note'),
        ('vouchers', 'reason'),
        ('feedback', 'comment'),
        ('cards', 'block_reason'),
    ):
        op.execute(
            sa.text(
                f"UPDATE {table} SET {column} = :redacted "
                f"WHERE {column} IS NOT NULL AND {column} <> :redacted AND {erased}"
            ).bindparams(redacted=REDACTED)
        )
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == 'sqlite':
        now = now.replace(tzinfo=None)  # UTC, as the models store it there
    op.execute(
        sa.text(
            "UPDATE cards SET status = 'blocked', blocked_at = :now, "
            f"block_reason = 'member_erased' WHERE status = 'active' AND {erased}"
        ).bindparams(sa.bindparam('now', now, type_=sa.DateTime(timezone=True)))
    )


def upgrade():
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('member_id', sa.BigInteger(), nullable=True))
        batch_op.create_index(
            'ix_idempotency_records_member_id',
            ['member_id'],
            unique=False,
            postgresql_where=sa.text('member_id IS NOT NULL'),
            sqlite_where=sa.text('member_id IS NOT NULL'),
        )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_APPEND_ONLY.format(allow=_PG_ALLOW_REDACTION))
    else:
        _sqlite_no_update(allow_redaction=True)
    _finish_earlier_erasures()


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(_PG_APPEND_ONLY.format(allow=''))
    else:
        _sqlite_no_update(allow_redaction=False)
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_records_member_id')
        batch_op.drop_column('member_id')
