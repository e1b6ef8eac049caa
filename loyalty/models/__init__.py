"""SQLAlchemy models, one module per aggregate."""

from loyalty.models.clients import SCOPES, ApiClient, AuditEntry, IdempotencyRecord
from loyalty.models.members import Card, Member
from loyalty.models.program import Program

__all__ = ["SCOPES", "ApiClient", "AuditEntry", "Card", "IdempotencyRecord", "Member", "Program"]
