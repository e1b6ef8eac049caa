"""SQLAlchemy models, one module per aggregate."""

from loyalty.models.campaigns import CAMPAIGN_KINDS, CAMPAIGN_STATUSES, Campaign
from loyalty.models.clients import SCOPES, ApiClient, AuditEntry, IdempotencyRecord
from loyalty.models.earning_rules import EARNING_RULE_KINDS, EarningRule, EarningRuleVersion
from loyalty.models.feedback import FEEDBACK_CHANNELS, Feedback
from loyalty.models.ledger import ENTRY_KINDS, LedgerEntry, PointLot
from loyalty.models.members import Card, Member
from loyalty.models.metrics import (
    BenefitPurchase,
    CohortMonth,
    MemberFirst,
    MemberSpan,
    PurchaseDay,
    PurchaseLink,
    RollupGap,
    RollupState,
)
from loyalty.models.program import Program
from loyalty.models.purchases import Purchase, PurchaseLine, Return
from loyalty.models.rewards import REDEMPTION_STATUSES, REWARD_KINDS, Redemption, Reward
from loyalty.models.staff import STAFF_ROLES, StaffAccount, StaffFormNonce
from loyalty.models.tiers import TIER_CHANGE_REASONS, TierChange
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
    "EARNING_RULE_KINDS",
    "ENTRY_KINDS",
    "FEEDBACK_CHANNELS",
    "REDEMPTION_STATUSES",
    "REWARD_KINDS",
    "SCOPES",
    "STAFF_ROLES",
    "TIER_CHANGE_REASONS",
    "VOUCHER_KINDS",
    "VOUCHER_STATUSES",
    "ApiClient",
    "AuditEntry",
    "BenefitPurchase",
    "Campaign",
    "Card",
    "CohortMonth",
    "EarningRule",
    "EarningRuleVersion",
    "Feedback",
    "IdempotencyRecord",
    "LedgerEntry",
    "Member",
    "MemberFirst",
    "MemberSpan",
    "PointLot",
    "Program",
    "Purchase",
    "PurchaseDay",
    "PurchaseLine",
    "PurchaseLink",
    "Redemption",
    "Return",
    "Reward",
    "RollupGap",
    "RollupState",
    "StaffAccount",
    "StaffFormNonce",
    "StripeEvent",
    "TierChange",
    "Voucher",
    "VoucherHoldout",
]
