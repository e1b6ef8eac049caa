"""The rules. No Flask here: functions take a SQLAlchemy session, flush, never commit."""
