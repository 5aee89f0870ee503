"""The operations page shows no figure that is not true (review 30, finding 5).

- The message totals are the bridge process's own counters (carried by its heartbeat): a restarted bridge counts
  from 0 again, and the page divided the drop by the poll's interval ("progress 1 -11.3" per second after
  `scripts/supervise.sh` restarted a SIGKILLed bridge). A restart is now a new start: no rate until its second
  heartbeat, and the totals say since when they count.
- A bridge not reporting (frozen, dead) left its last heartbeat's figures shown as now ("Internal road: connected",
  "Waiting in the bridge: 0") beside "Monitoring degraded": they now say what they were and how long ago.
- A failed poll left the banner green under "Operations data unavailable" and every figure unmarked.
"""

import json
import os
import re
import signal
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STARTED = datetime(2026, 12, 6, 4, 0, 0, tzinfo=UTC)
RESTARTED = datetime(2026, 12, 6, 4, 10, 0, tzinfo=UTC)


def heartbeat(n: int, since: datetime, progress: int) -> dict:
    """The n-th heartbeat (2 s apart) of a bridge process whose counters started at `since`, having received
    `progress` progress messages."""
    at = (RESTARTED + timedelta(seconds=2 * n)).isoformat()
    return {"at": at, "since": since.isoformat(), "received": {"progress": progress}}


def served(frames: list[dict], stage: dict):
    """A route answering each poll with the real status, its bridge's heartbeat replaced by `frames[stage["i"]]`."""

    def fulfil(route):
        response = route.fetch()
        data, frame = response.json(), frames[stage["i"]]
        data["bridge"]["heartbeatAt"] = frame["at"]
        data["bridge"]["stats"]["countersSince"] = frame["since"]
        data["received"] = frame["received"]
        data["bridges"] = [{"name": data["bridge"]["name"], "heartbeatAt": frame["at"], "countersSince": frame["since"],
                            "received": frame["received"], "rejected": {}}]  # fmt: skip
        route.fulfill(response=response, body=json.dumps(data))

    return fulfil


def test_a_bridge_restart_starts_the_rates_again_and_never_shows_a_negative_one(open_page):
    page = open_page(make_user("ops-rate", is_staff=True, is_superuser=True), "/ops/")
    frames = [
        heartbeat(0, STARTED, 100),
        heartbeat(1, STARTED, 200),  # 100 in 2 s
        heartbeat(2, STARTED, 3),  # a total went down: the same start time, yet a restart (or an older bridge)
        heartbeat(3, RESTARTED, 13),  # another process: its first heartbeat seen
        heartbeat(4, RESTARTED, 23),  # 10 in 2 s
    ]
    stage = {"i": 0}
    page.route("**/ops/status.json", served(frames, stage))
    cells = page.locator("#ops-received tbody tr td")
    expected = [("100", "—"), ("200", "50.0"), ("3", "—"), ("13", "—"), ("23", "5.0")]
    for i, (total, rate) in enumerate(expected):
        stage["i"] = i
        expect(cells.nth(1)).to_have_text(total, timeout=10_000)
        expect(cells.nth(2)).to_have_text(rate, timeout=10_000)
        if i in (2, 3):
            expect(page.locator(".ops-counted").first).to_contain_text("it restarted, its totals began again")
    expect(page.locator(".ops-counted").first).to_have_text(
        re.compile(r"^Totals since the bridge started at \d\d?:\d\d:\d\d")
    )


def test_two_bridges_sharing_the_pumps_show_their_summed_rate_and_only_a_real_restart(open_page):
    """Two bridges (BRIDGE_SLOTS=2) heartbeat in turn, each receiving 10 progress messages a second: the page shows
    their summed totals and 20.0 a second, never "restarted" for the other bridge's heartbeat (review 31, finding 4:
    the summary named whichever heartbeat last, and the page read each change of bridge as a restart, its rate one
    bridge's, or none). Then bridge-1 really restarts: no rate until its second heartbeat, and it is named."""
    page = open_page(make_user("ops-slots", is_staff=True, is_superuser=True), "/ops/")
    first, second = STARTED, STARTED + timedelta(seconds=5)
    restarted = RESTARTED + timedelta(seconds=30)

    def counter(name: str, at: int, since: datetime, progress: int) -> dict:
        at_iso = (RESTARTED + timedelta(seconds=at)).isoformat()
        return {"name": name, "heartbeatAt": at_iso, "countersSince": since.isoformat(),
                "received": {"progress": progress}, "rejected": {}}  # fmt: skip

    frames = [  # each poll: both bridges' latest heartbeats, one of them newer than at the poll before
        [counter("pumpstream-bridge-0", 0, first, 1000), counter("pumpstream-bridge-1", 1, second, 5000)],
        [counter("pumpstream-bridge-0", 2, first, 1020), counter("pumpstream-bridge-1", 1, second, 5000)],
        [counter("pumpstream-bridge-0", 2, first, 1020), counter("pumpstream-bridge-1", 3, second, 5020)],
        [counter("pumpstream-bridge-0", 4, first, 1040), counter("pumpstream-bridge-1", 5, second, 5040)],
        [counter("pumpstream-bridge-0", 6, first, 1060), counter("pumpstream-bridge-1", 31, restarted, 3)],
        [counter("pumpstream-bridge-0", 6, first, 1060), counter("pumpstream-bridge-1", 33, restarted, 23)],
    ]
    stage = {"i": 0}

    def fulfil(route):
        response = route.fetch()
        data, bridges = response.json(), frames[stage["i"]]
        data["bridges"] = bridges
        data["received"] = {"progress": sum(bridge["received"]["progress"] for bridge in bridges)}
        route.fulfill(response=response, body=json.dumps(data))

    page.route("**/ops/status.json", fulfil)
    cells, counted = page.locator("#ops-received tbody tr td"), page.locator(".ops-counted").first
    expected = [("6000", "—"), ("6020", "—"), ("6040", "20.0"), ("6080", "20.0"), ("1063", "—"), ("1083", "20.0")]
    for i, (total, rate) in enumerate(expected):
        stage["i"] = i
        expect(cells.nth(1)).to_have_text(total, timeout=10_000)
        expect(cells.nth(2)).to_have_text(rate, timeout=10_000)
        if i == 4:
            expect(counted).to_contain_text(": pumpstream-bridge-1 restarted, its totals began again")
        else:
            expect(counted).not_to_contain_text("restarted")
    expect(counted).to_have_text(
        re.compile(
            r"^Totals of 2 bridges since they started: pumpstream-bridge-0 at \d\d?:\d\d:\d\d, pumpstream-bridge-1 at"
        )
    )


def test_a_bridge_not_reporting_shows_its_last_heartbeat_as_old(open_page, stack):
    page = open_page(make_user("ops-stale", is_staff=True, is_superuser=True), "/ops/")
    bridge_card = page.locator("#ops-bridge")
    expect(bridge_card).to_contain_text("Internal road", timeout=10_000)
    road = bridge_card.locator("dt:text-is('Internal road') + dd")
    expect(road).to_have_text("connected")
    bridge = stack["bridge"].process
    os.kill(bridge.pid, signal.SIGSTOP)  # a frozen bridge (a VM pause): its heartbeat ages
    try:
        expect(page.locator("#ops-banner")).to_contain_text("Monitoring degraded", timeout=30_000)
        expect(road).to_have_text(re.compile(r"^was connected, \d+ s ago$"))
        expect(road).to_have_class("stale")
        waiting = bridge_card.locator("dt:text-is('Waiting in the bridge') + dd")
        expect(waiting).to_have_text(re.compile(r"^was \d+, \d+ s ago$"))
        expect(bridge_card.locator("dt:text-is('Broker') + dd")).to_have_text("unknown: the bridge is not reporting")
        expect(page.locator("#ops-received")).to_have_class(re.compile(r"\bstale\b"))
        expect(page.locator(".ops-counted").first).to_contain_text("from its last heartbeat")
        rates = page.locator("#ops-received tbody tr td:nth-child(3)").all_inner_texts()
        assert set(rates) <= {"—"}, f"rates shown from a heartbeat that is not current: {rates}"
    finally:
        os.kill(bridge.pid, signal.SIGCONT)
    expect(road).to_have_text("connected", timeout=30_000)
    expect(road).not_to_have_class("stale")


def test_a_failed_poll_turns_the_banner_degraded_and_marks_the_figures_old(open_page):
    page = open_page(make_user("ops-down", is_staff=True, is_superuser=True), "/ops/")
    banner, figures = page.locator("#ops-banner"), page.locator("#ops-figures")
    expect(banner).to_have_class(re.compile(r"\bok\b"), timeout=15_000)
    page.route("**/ops/status.json", lambda route: route.abort())
    expect(banner).to_contain_text("Operations data unavailable: the server is unreachable", timeout=10_000)
    expect(banner).to_contain_text(re.compile(r"The figures below are from \d\d?:\d\d:\d\d: not current"))
    expect(banner).to_have_class("banner degraded")
    expect(figures).to_have_class("stale")
    expect(page.locator("#ops-at")).to_contain_text("not refreshed since")
    page.unroute("**/ops/status.json")
    page.route("**/ops/status.json", lambda route: route.fulfill(status=503, body="Service Unavailable"))
    expect(banner).to_contain_text("Operations data unavailable: HTTP 503", timeout=10_000)
    expect(banner).to_have_class("banner degraded")
    expect(figures).to_have_class("stale")
    page.unroute("**/ops/status.json")
    expect(banner).to_have_class("banner ok", timeout=10_000)
    expect(figures).not_to_have_class("stale")
