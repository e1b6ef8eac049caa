"""The segments' own rollups (member_spans, benefit_purchases, migration 0021) never change a
figure, whatever the job has seen: a voucher or reward linked to a purchase after the job rolled
it up (by order_ref, by purchase_external_id at confirm), back-dated purchases moving a member's
first purchase and second-latest one, two purchases on one day, an erasure, and both tables
damaged on purpose, found by the check and rebuilt. At each step the counts equal a plain reading
of the definitions (tests/api/test_metrics_reference.py) for as_of today, in the past and in the
future, and, for today, each member's own segment (segment_of) adds up to them."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text

from loyalty.domain import rollups
from loyalty.extensions import db
from loyalty.models import Voucher
from tests.api.test_metrics_reference import Bought, segments
from tests.factories import goodwill_code

TODAY = datetime.now(UTC).date()
AS_OF = (
    TODAY,
    TODAY - timedelta(days=120),
    TODAY - timedelta(days=330),
    TODAY + timedelta(days=300),
)


def ago(days: int, hour: int = 12) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days), time(hour), tzinfo=UTC)


# member: (days ago, hour) of the purchases made first; BACK_DATED come after the first run
FIRST = {
    "A": [(200, 12), (60, 12)],  # loyal; a voucher names the older one after the run
    # the latest two on one day; a voucher on the first, a reward confirmed on the last after
    # the run: from loyal (1 of 3) to deal_seeker (2 of 3)
    "B": [(150, 12), (50, 9), (50, 18)],
    "C": [(30, 12)],  # new; a back-dated purchase 400 days ago makes it occasional
    "D": [(50, 12)],  # new; a back-dated purchase 300 days ago makes it loyal
    "E": [(400, 12)],  # lost
    "F": [(20, 12), (40, 12), (100, 0)],  # a voucher on the first: loyal (1 of 3)
    "G": [(10, 23), (200, 0)],  # erased later
    "H": [(300, 12), (200, 12), (100, 12), (30, 12), (10, 12)],  # vouchers on three: deal_seeker
}
VOUCHERS = {("B", 0), ("F", 0), ("H", 0), ("H", 2), ("H", 4)}
BACK_DATED = {"C": [(400, 12)], "D": [(300, 12)]}


def _roll_up(runner, *flags: str) -> str:
    out = runner.invoke(args=["loyalty", "metrics-rollup", *flags, "--check"])
    assert out.exit_code == 0, out.output
    assert "The rollups equal the purchases." in out.output
    return out.output


def _held(app, sql: str) -> list[tuple]:
    with app.app_context():
        rows = [tuple(r) for r in db.session.execute(text(sql)).all()]
        db.session.rollback()
    return rows


class History:
    """The purchases made through the API, and the deals, as the plain reading takes them."""

    def __init__(self, client, pos, admin) -> None:
        self.client, self.pos, self.admin = client, pos, admin
        self.ids: dict[str, int] = {}
        self.bought: list[Bought] = []
        self.n = 0

    def member(self, name: str) -> None:
        self.ids[name] = self.client.post(
            "/api/v1/members", json={"name": name}, headers=self.pos
        ).json["id"]

    def buy(self, name: str, days: int, hour: int, voucher: bool = False) -> str:
        external_id = f"{name}-{self.n}"
        self.n += 1
        body = {
            "external_id": external_id,
            "member_id": self.ids[name],
            "amount": 1000,
            "currency": "EUR",
            "occurred_at": ago(days, hour).isoformat(),
        }
        if voucher:
            body["voucher_codes"] = [goodwill_code(self.client, self.admin, self.ids[name])]
        r = self.client.post("/api/v1/purchases", json=body, headers=self.pos)
        assert r.status_code == 201, r.json
        self.bought.append(
            Bought(name, ago(days, hour), 1000, None, "voucher" if voucher else None)
        )
        return external_id

    def deal(self, external_id: str) -> None:
        i = next(i for i, b in enumerate(self.bought) if f"{b.member}-{i}" == external_id)
        self.bought[i].deal = "voucher"

    def agree(self, reports: dict[str, str], own: bool = True, **today: int) -> None:
        """The counts equal the plain reading (and `today`'s of them those given)."""
        for as_of in AS_OF:
            got = self.client.get(f"/api/v1/metrics/segments?as_of={as_of}", headers=reports).json
            expected = segments(self.bought, [], as_of)
            assert {k: got[k] for k in expected} == expected, as_of
            assert as_of != TODAY or {k: got[k] for k in today} == today
        if own:  # each member's segment today adds up to today's counts
            mine = Counter(
                self.client.get(f"/api/v1/members/{i}", headers=self.pos).json["segment"]
                for i in self.ids.values()
            )
            today = self.client.get(f"/api/v1/metrics/segments?as_of={TODAY}", headers=reports)
            assert {k: v for k, v in today.json["segments"].items() if v} == dict(mine)


def test_segment_rollups_keep_the_figures_exact(app, client, runner, pos, admin, api_key) -> None:
    reports = api_key("reports")
    h = History(client, pos, admin)
    for name, times in FIRST.items():
        h.member(name)
        for i, (days, hour) in enumerate(times):
            h.buy(name, days, hour, voucher=(name, i) in VOUCHERS)
    h.agree(reports, deal_seeker=1, loyal=4, new=2)  # all past the rollups
    _roll_up(runner)
    h.agree(reports, deal_seeker=1, loyal=4, new=2)  # all from the rollups
    assert _held(app, "SELECT COUNT(*) FROM benefit_purchases") == [(5,)]
    spans = "SELECT first_day, last2_day, last_day FROM member_spans WHERE member_id = "
    b_day = str(TODAY - timedelta(days=50))
    assert [str(d) for d in _held(app, spans + str(h.ids["B"]))[0]] == [
        str(TODAY - timedelta(days=150)),
        b_day,
        b_day,
    ]
    assert [d and str(d) for d in _held(app, spans + str(h.ids["C"]))[0]] == [
        str(TODAY - timedelta(days=30)),
        None,
        str(TODAY - timedelta(days=30)),
    ]

    # links made after the job rolled their purchases up: read through the purchases until the
    # job notes them
    code = goodwill_code(client, admin, h.ids["A"])
    body = {"order_ref": "A-0", "amount": 1000, "currency": "EUR", "member_id": h.ids["A"]}
    assert client.post(f"/api/v1/vouchers/{code}/redeem", json=body, headers=pos).status_code == 200
    h.deal("A-0")
    reward = client.post(
        "/api/v1/rewards",
        json={"name": "Cookie", "kind": "free_item", "sku": "C", "points_cost": 1},
        headers=admin,
    ).json
    body = {"member_id": h.ids["B"], "reward_id": reward["id"]}
    red = client.post("/api/v1/redemptions", json=body, headers=pos).json
    r = client.post(
        f"/api/v1/redemptions/{red['id']}/confirm",
        json={"purchase_external_id": "B-4"},
        headers=pos,
    )
    assert r.status_code == 200 and r.json["status"] == "redeemed", r.json
    h.deal("B-4")
    h.agree(reports, deal_seeker=3, loyal=2)
    assert _held(app, "SELECT COUNT(*) FROM benefit_purchases") == [(5,)]
    _roll_up(runner)
    assert _held(app, "SELECT COUNT(*) FROM benefit_purchases") == [(7,)]
    h.agree(reports)

    # back-dated purchases: first purchases move earlier (C, D) past the rollups, then in them
    for name, times in BACK_DATED.items():
        for days, hour in times:
            h.buy(name, days, hour)
    h.agree(reports, new=0, loyal=3, occasional=1)
    _roll_up(runner)
    h.agree(reports, new=0, loyal=3, occasional=1)

    # an erasure keeps the purchases: nothing moves
    assert client.delete(f"/api/v1/members/{h.ids['G']}", headers=admin).status_code == 204
    h.agree(reports, own=False)
    _roll_up(runner)

    # damaged on purpose: found, rebuilt, the same figures
    with app.app_context():
        for statement in (
            f"UPDATE member_spans SET last2_day = NULL WHERE member_id = {h.ids['A']}",
            f"UPDATE member_spans SET last_day = first_day WHERE member_id = {h.ids['F']}",
            "UPDATE benefit_purchases SET day = '2001-01-01' WHERE purchase_id IN "
            "(SELECT MIN(purchase_id) FROM benefit_purchases)",
            "DELETE FROM benefit_purchases WHERE purchase_id IN "
            "(SELECT MAX(purchase_id) FROM benefit_purchases)",
        ):
            db.session.execute(text(statement))
        db.session.commit()
        differing = rollups.check(db.session())
        db.session.rollback()
    # two spans rows wrong (held and made: 4 rows), and those whose benefit days the damaged
    # benefit_purchases now make differ too; of benefit_purchases the row with the wrong day
    # (the missing one is what a link made since the last run looks like: not an error, the
    # figures look such links up)
    assert differing["member_spans"] >= 4 and differing["benefit_purchases"] == 1, differing
    _roll_up(runner, "--rebuild")
    h.agree(reports, own=False)


# (purchases in the window, of which used a voucher): both sides of "at least half" for each
# way the deal-seeker rule is settled (the k-th latest days, or counted)
SHAPES = [(n, b) for n in (2, 3, 4, 5, 7, 8, 9, 10, 16, 17, 18, 33, 34, 40, 66, 67, 70) for b in
          sorted({0, 1, (n - 1) // 2, n // 2, (n + 1) // 2, n})]  # fmt: skip


def test_deal_seekers_of_every_size_are_counted_exactly(app, client, runner, pos, api_key) -> None:
    """Members with 2 to 70 purchases in the window and 0 to all of them with a voucher (one
    more purchase 400 days ago, so none is new): deal seekers exactly when 2b >= n, from the
    purchases past the rollups, from the rollups, and as of a day before some of them."""
    reports = api_key("reports")
    with app.app_context():
        client_id = db.session.execute(text("SELECT MIN(id) FROM api_clients")).scalar_one()
    expected, bought, ids = Counter(), [], []
    for n, b in SHAPES:
        member = client.post("/api/v1/members", json={"name": f"m{n}-{b}"}, headers=pos).json
        ids.append(member["id"])
        with app.app_context():
            for i in range(n + 1):
                at = ago(400 if i == n else 1 + i * 5)  # the latest 1 day ago, one every 5 days
                pid = db.session.execute(
                    text(
                        "INSERT INTO purchases (member_id, api_client_id, external_id, amount, "
                        "currency, occurred_at, store_id, points_earned, returned_amount, "
                        "points_reversed, created_at) VALUES (:m, :c, :e, 1000, 'EUR', :at, "
                        "NULL, 0, 0, 0, :at) RETURNING id"
                    ),
                    {"m": member["id"], "c": client_id, "e": f"s-{n}-{b}-{i}", "at": at},
                ).scalar_one()
                bought.append(Bought(f"m{n}-{b}", at, 1000, None, "voucher" if i < b else None))
                if i < b:  # the latest b used a voucher
                    db.session.add(
                        Voucher(
                            code=f"S{n:03d}{b:03d}{i:03d}",
                            member_id=member["id"],
                            kind="goodwill",
                            discount_type="amount",
                            value=100,
                            currency="EUR",
                            min_spend=0,
                            valid_from=at - timedelta(days=1),
                            valid_until=at + timedelta(days=1),
                            status="used",
                            used_at=at,
                            used_purchase_id=pid,
                            discount_given=100,
                        )
                    )
            db.session.commit()
        expected["deal_seeker" if 2 * b >= n else "loyal"] += 1

    def counts(as_of: object) -> dict[str, int]:
        r = client.get(f"/api/v1/metrics/segments?as_of={as_of}", headers=reports)
        return {k: v for k, v in r.json["segments"].items() if v}

    def plain(as_of: date) -> dict[str, int]:
        return {k: v for k, v in segments(bought, [], as_of).items() if v}

    # 100 days ago: the purchases of the last 100 days are after as_of (counted, not spanned)
    past = TODAY - timedelta(days=100)
    assert plain(TODAY) == dict(expected)
    for _ in range(2):  # all past the rollups, then all in them
        assert counts(TODAY) == dict(expected)
        assert counts(past) == plain(past)
        _roll_up(runner)
    mine = Counter(client.get(f"/api/v1/members/{m}", headers=pos).json["segment"] for m in ids)
    assert dict(mine) == dict(expected)


def test_spans_left_behind_by_an_older_job_answer_503_until_the_next_run(
    app, client, runner, pos, admin, api_key
) -> None:
    """During an upgrade the release before migration 0021 may roll purchases up without
    the spans: rollup_state.updated_at moves, spans_at does not. The segments then answer 503
    `metrics_catching_up` rather than figures that may be off, and this release's next run makes
    the spans again: the counts are exact after it."""
    reports = api_key("reports")
    h = History(client, pos, admin)
    for name in ("A", "B"):
        h.member(name)
    h.buy("A", 200, 12)
    _roll_up(runner)
    h.buy("A", 10, 12)  # rolled up below by "the older job": purchase_days yes, spans no
    h.buy("B", 5, 12)
    with app.app_context():
        rollups.advance(db.session())
        db.session.execute(text("DELETE FROM member_spans"))
        db.session.execute(text("INSERT INTO member_spans (member_id, first_day, last_day) "
                                f"VALUES ({h.ids['A']}, '{TODAY - timedelta(days=200)}', "
                                f"'{TODAY - timedelta(days=200)}')"))  # fmt: skip
        db.session.execute(
            text("UPDATE rollup_state SET updated_at = :t"), {"t": datetime.now(UTC)}
        )
        db.session.commit()
    r = client.get(f"/api/v1/metrics/segments?as_of={TODAY}", headers=reports)
    assert (r.status_code, r.json["code"]) == (503, "metrics_catching_up"), r.json
    _roll_up(runner)  # nothing new to roll up: the spans are made again all the same
    h.agree(reports, loyal=1, new=1)
    spans = _held(app, f"SELECT last2_day FROM member_spans WHERE member_id = {h.ids['A']}")
    assert [str(day) for (day,) in spans] == [str(TODAY - timedelta(days=200))]
