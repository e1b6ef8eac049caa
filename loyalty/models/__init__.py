"""SQLAlchemy models, one module per aggregate."""

from loyalty.models.campaigns import CAMPAIGN_KINDS, CAMPAIGN_STATUSES, Campaign
from loyalty.models.clients import SCOPES, ApiClient, AuditEntry, IdempotencyRecord
from loyalty.models.feedback import FEEDBACK_CHANNELS, Feedback
from loyalty.models.ledger import ENTRY_KINDS, LedgerEntry
from loyalty.models.members import Card, Member
from loyalty.models.program import Program
from loyalty.models.purchases import Purchase, PurchaseLine, Return
from loyalty.models.rewards import REDEMPTION_STATUSES, REWARD_KINDS, Redemption, Reward
from loyalty.models.vouchers import (
    DISCOUNT_TYPES,
    VOUCHER_KINDS,
    VOUCHER_STATUSES,
    StripeEvent,
    Voucher,
    VoucherHoldout,
)

__all__ = [
    "CAMPAIGN_KINDS",
    "CAMPAIGN_STATUSES",
    "DISCOUNT_TYPES",
    "ENTRY_KINDS",
    "FEEDBACK_CHANNELS",
    "REDEMPTION_STATUSES",
    "REWARD_KINDS",
    "SCOPES",
    "VOUCHER_KINDS",
    "VOUCHER_STATUSES",
    "ApiClient",
    "AuditEntry",
    "Campaign",
    "Card",
    "Feedback",
    "IdempotencyRecord",
    "LedgerEntry",
    "Member",
    "Program",
    "Purchase",
    "PurchaseLine",
    "Redemption",
    "Return",
    "Reward",
    "StripeEvent",
    "Voucher",
    "VoucherHoldout",
]
