"""Calibration for bench/accrual.py: a bare Flask endpoint that runs only the SQL of one purchase
(the key's lookup, the idempotency lookup, the card, the purchase, the credit, its ledger entry
and lot, the idempotency record) through SQLAlchemy Core (no scopes, schemas, idempotency logic,
rate limits, logs or error mapping). The ratio between this and the real app says what our
layers cost. Served by `bench/accrual.py --bare`.
"""

from __future__ import annotations

import hashlib
import json
import os

from flask import Flask, jsonify, request
from sqlalchemy import create_engine, text

app = Flask(__name__)
engine = create_engine(
    os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1),
    pool_size=5,
)
CLIENT = int(os.environ.get("BARE_CLIENT_ID", "1"))

AUTH = text(
    "SELECT id, name, scopes, store_id FROM api_clients WHERE revoked_at IS NULL"
    " AND (key_hash = :h OR (previous_key_hash = :h AND previous_key_expires_at > now()))"
    " LIMIT 1"
)
LOOKUP = text(
    "SELECT request_hash, status_code, response_body FROM idempotency_records"
    " WHERE api_client_id = :c AND key = :k"
)
CARD = text(
    "SELECT cards.member_id, cards.status, program.currency, program.currency_exponent,"
    " program.points_per_unit, program.rounding, program.come_back_policy FROM cards"
    " JOIN program ON program.id = 1 WHERE cards.number = :number"
)
PURCHASE = text(
    "INSERT INTO purchases (member_id, api_client_id, external_id, amount, currency,"
    " occurred_at, store_id, points_earned, returned_amount, points_reversed, created_at) VALUES"
    " (:m, :c, :e, :a, 'EUR', now(), NULL, :p, 0, 0, now()) ON CONFLICT (api_client_id,"
    " external_id) DO NOTHING RETURNING id"
)
CREDIT = text(
    "UPDATE members SET points = points + :p,"
    " available_floor = CASE WHEN points + :p - held < 0 THEN points + :p - held ELSE 0 END,"
    " gross_spend = gross_spend + :a, updated_at = now() WHERE id = :m RETURNING points, held"
)
ENTRY = text(
    "INSERT INTO ledger_entries (member_id, kind, points, balance_after, reason, purchase_id,"
    " api_client_id, actor, created_at) VALUES (:m, 'earn', :p, :b, 'purchase', :pid, :c, 'bare',"
    " now()) RETURNING id"
)
LOT = text(
    "INSERT INTO point_lots (member_id, entry_id, purchase_id, points, remaining, expires_at,"
    " pending_until, created_at) VALUES (:m, :eid, :pid, :p, :p, NULL, NULL, now())"
)
IDEM = text(
    "INSERT INTO idempotency_records (api_client_id, key, request_hash, status_code,"
    " response_body, created_at) VALUES (:c, :k, :h, 201, :b, now())"
    " ON CONFLICT (api_client_id, key) DO NOTHING RETURNING id"
)


@app.post("/api/v1/purchases")
def purchase():  # type: ignore[no-untyped-def]
    body = request.get_json()
    key = request.headers["Idempotency-Key"]
    with engine.begin() as conn:
        digest = hashlib.sha256(request.headers["Authorization"][7:].encode()).hexdigest()
        conn.execute(AUTH, {"h": digest}).one()
        stored = conn.execute(LOOKUP, {"c": CLIENT, "k": key}).first()
        if stored is not None:
            return stored.response_body, stored.status_code
        card = conn.execute(CARD, {"number": body["card_number"]}).one()
        points = body["amount"] // 100
        params = {"m": card.member_id, "c": CLIENT, "e": body["external_id"], "a": body["amount"]}
        pid = conn.execute(PURCHASE, {**params, "p": points}).scalar()
        balance = None
        if pid is not None and points:
            balance = conn.execute(
                CREDIT, {"m": card.member_id, "p": points, "a": body["amount"]}
            ).one()
            eid = conn.execute(
                ENTRY, {**params, "p": points, "b": balance.points, "pid": pid}
            ).scalar()
            conn.execute(LOT, {"m": card.member_id, "eid": eid, "pid": pid, "p": points})
        out = {
            "id": pid,
            "points_earned": points,
            "balance": {"points": balance.points if balance is not None else None},
        }
        conn.execute(IDEM, {"c": CLIENT, "k": key, "h": "0" * 64, "b": json.dumps(out)})
    return jsonify(out), 201
