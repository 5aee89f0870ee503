"""Unit tests of the per-pump budgets: a flooding pump's excess is shed and summed up, the others untouched."""

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, Device
from devices.services.alarms import alarm_acknowledge
from devices.services.protection import alarm_floods_counts_send
from realtime.bridge.batch import SHED, BatchIngest
from realtime.bridge.budgets import Budget, PumpBudgets, ShedSummary
from realtime.bridge.flood import ProgressFloodGuard, TimeAway, times_away_open
from realtime.bridge.ingest import APPLIED, InboundMessage
from tests.factories import make_device, make_user

pytestmark = pytest.mark.django_db
OFF = Budget(0, 1)
BASE = timezone.now()  # one clock for every message: no bucket refills between them unless `at_s` says so


def message(device_id: str, kind: str, body: dict, *, at_s: float = 0.0) -> InboundMessage:
    return InboundMessage(topic=f"devices/{device_id}/{kind}", payload=json.dumps(body).encode(),
                          received_at=BASE + timedelta(seconds=at_s))  # fmt: skip


def ingest(batch, budgets: PumpBudgets):
    with transaction.atomic():
        return BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1), budgets).run(batch)


def active(device_id: str) -> dict[str, Alarm]:
    return {alarm.type: alarm for alarm in Alarm.objects.filter(device__device_id=device_id, state="active")}


def test_three_thousand_errors_of_one_pump_are_shed_beyond_its_budget_and_summed_up_in_one_alarm_flood():
    make_device("FLOOD")
    make_device("CALM")
    budgets = PumpBudgets(alarm=Budget(1, 20), report=Budget(5, 50), max_active_alarms=20)
    flood = [message("FLOOD", "error", {"type": f"fault_{n}", "severity": "high"}, at_s=n / 30000) for n in range(3000)]
    outcomes = ingest([*flood, message("CALM", "error", {"type": "occlusion", "severity": "high"})], budgets)
    alarms = active("FLOOD")
    assert outcomes[SHED] == 2980, f"all but the burst of 20 must be shed: {outcomes}"
    assert len(alarms) == 21, f"20 alarms and one alarm_flood, got {len(alarms)}"
    summary = alarms["alarm_flood"]
    assert (summary.priority, summary.source, summary.details["shed"]) == ("high", "server", {"error": 2980})
    assert "occlusion" in active("CALM"), "another pump's alarm must pass"


def test_the_summary_is_one_alarm_counted_again_per_batch():
    make_device("FLOOD")
    budgets = PumpBudgets(alarm=Budget(1, 2), report=OFF, max_active_alarms=0)
    for batch in range(3):
        ingest([message("FLOOD", "error", {"type": "x"}, at_s=batch * 0.01) for _ in range(10)], budgets)
    alarm_floods_counts_send(now=timezone.now() + timedelta(seconds=2))  # repeats within a second: held, then sent
    summary = active("FLOOD")["alarm_flood"]
    assert summary.count == 3 and Alarm.objects.filter(type="alarm_flood").count() == 1
    assert summary.details["shed"] == {"error": 8 + 10 + 10}, "the counts add up over the batches"
    assert summary.details["alarmTypes"] == ["x"] and "(alarms: x)" in summary.message


def test_a_status_flood_keeps_the_newest_status_of_each_batch():
    make_device("FLOOD")
    budgets = PumpBudgets(alarm=OFF, report=Budget(5, 50), max_active_alarms=0)
    outcomes = ingest([message("FLOOD", "status", {"status": "idle", "batteryLevel": n % 100}) for n in range(500)],
                      budgets)  # fmt: skip
    assert outcomes[SHED] == 449 and outcomes[APPLIED] == 51
    assert Device.objects.get(device_id="FLOOD").battery_level == 499 % 100, "the newest status must be applied"
    assert active("FLOOD")["alarm_flood"].details["shed"] == {"status": 449}


def test_a_pump_holds_at_most_max_active_distinct_alarms_but_repeats_and_clearings_pass():
    make_device("PUMP_X")
    budgets = PumpBudgets(alarm=OFF, report=OFF, max_active_alarms=5)
    ingest([message("PUMP_X", "error", {"type": f"fault_{n}"}) for n in range(8)], budgets)
    assert set(active("PUMP_X")) == {f"fault_{n}" for n in range(5)} | {"alarm_flood"}
    ingest([message("PUMP_X", "error", {"type": "fault_0"}), message("PUMP_X", "error", {"type": "fault_1_cleared"}),
            message("PUMP_X", "error", {"type": "fault_9"})], budgets)  # fmt: skip
    alarms = active("PUMP_X")
    assert alarms["fault_0"].count == 2, "a repeat of an active alarm only counts"
    assert "fault_1" not in alarms, "a clearing passes"
    assert "fault_9" in alarms, "a place freed by the clearing is taken"


def test_the_bound_counts_alarms_not_types_so_a_new_error_code_each_time_is_bounded_too():
    """An alarm is one per type and errorCode: the bound counted type keys only, so a pump sending `occlusion` with a
    new errorCode each time held any number of active alarms (60 here; review 15), each shown, summarised and
    re-checked. A repeat of an active (type, errorCode) still only counts."""
    make_device("CODES")
    budgets = PumpBudgets(alarm=OFF, report=OFF, max_active_alarms=5)
    ingest([message("CODES", "error", {"type": "occlusion", "errorCode": f"E{n}"}) for n in range(60)], budgets)
    alarms = Alarm.objects.filter(device__device_id="CODES", state="active")
    codes = sorted(alarms.exclude(type="alarm_flood").values_list("error_code", flat=True))
    assert codes == [f"E{n}" for n in range(5)]
    assert sum(alarms.get(type="alarm_flood").details["shed"].values()) == 55
    ingest([message("CODES", "error", {"type": "occlusion", "errorCode": "E0"})], budgets)
    assert alarms.get(error_code="E0").count == 2, "a repeat of an active alarm only counts"


def test_a_free_text_clearing_that_would_be_raised_as_an_alarm_is_bound_by_the_cap_as_an_alarm():
    """Review 15, finding 4: "Occlusion not cleared" clears nothing and is raised as an alarm, so the bound on active
    alarms decides it as an alarm (a pump cannot pass the bound by ending its types in "cleared"); shed, it is named."""
    make_device("PUMP_Y")
    budgets = PumpBudgets(alarm=OFF, report=OFF, max_active_alarms=2)
    ingest([message("PUMP_Y", "error", {"type": f"fault_{n}"}) for n in range(2)], budgets)
    ingest([message("PUMP_Y", "error", {"type": "Occlusion not cleared", "severity": "high"}),
            message("PUMP_Y", "error", {"type": "fault_1 cleared"})], budgets)  # fmt: skip
    alarms = active("PUMP_Y")
    assert "fault_1" not in alarms, "a free-text clearing that clears an active alarm passes the bound"
    assert "occlusion_not_cleared" not in alarms, f"the bound was passed by a clearing-shaped alarm: {sorted(alarms)}"
    assert alarms["alarm_flood"].details["alarmTypes"] == ["Occlusion not cleared"], alarms["alarm_flood"].message


def test_an_unregistered_pump_flooding_raises_nothing():
    budgets = PumpBudgets(alarm=Budget(1, 2), report=Budget(1, 2), max_active_alarms=5)
    outcomes = ingest([message("NOBODY", "error", {"type": "x"}) for _ in range(10)], budgets)
    assert outcomes[SHED] == 8 and not Alarm.objects.exists()


def test_a_batch_retried_after_rollbacks_sheds_and_counts_the_same_messages():
    make_device("FLOOD")
    make_device("CALM")
    batch = [message("FLOOD", "error", {"type": f"fault_{n}"}) for n in range(5)]
    batch.append(message("CALM", "error", {"type": "occlusion"}))
    ingest = BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1),
                         PumpBudgets(alarm=Budget(1, 2), report=OFF, max_active_alarms=0))  # fmt: skip
    for _ in range(6):  # the database locked six times: the committer rolls back and tries the batch again
        with pytest.raises(RuntimeError), transaction.atomic():
            ingest.run(batch)
            raise RuntimeError("database is locked")
    with transaction.atomic():
        outcomes = ingest.run(batch)
    assert outcomes[SHED] == 3, f"the same 3 shed as on the first try: {outcomes}"
    assert set(active("FLOOD")) == {"fault_0", "fault_1", "alarm_flood"}
    assert active("FLOOD")["alarm_flood"].details["shed"] == {"error": 3}, "counted once, not once per try"
    assert "occlusion" in active("CALM"), "a retry must not use up a calm pump's budget"


def test_a_pumps_backlog_after_an_hour_away_is_no_flood():
    """A pump back after an hour's outage (its network, the broker or the bridge) sends what it queued at once:
    ten reports a minute, all received in one instant. The default budgets shed none and raise no alarm_flood."""
    from realtime.bridge.worker import pump_budgets

    make_device("BACK")
    backlog = [message("BACK", "status", {"status": "running", "seq": n}) for n in range(1, 601)]
    outcomes = ingest(backlog, pump_budgets())
    assert outcomes[SHED] == 0, f"a backlog was shed as a flood: {outcomes}"
    assert "alarm_flood" not in active("BACK")


def alarm_backlog(device_id: str, pairs: int) -> list[InboundMessage]:
    """What a pump said while the bridge was away: `pairs` alarms, each raised and cleared (received at once)."""
    said = []
    for n in range(pairs):
        said += [message(device_id, "error", {"type": f"air_in_line_{n}", "severity": "high"}),
                 message(device_id, "error", {"type": f"air_in_line_{n}_cleared"})]  # fmt: skip
    return said


def test_what_a_pump_said_while_the_bridge_was_away_is_credited_not_shed_as_a_flood():
    """Ten minutes away (a lost link, a restart): a pump's 15 alarms, raised and cleared, wait at the broker and
    arrive at once. Without the credit 25 of them are shed (burst 5) and a false alarm_flood is raised, and a
    shed clearing leaves its alarm standing; credited for the time away, every one is applied as itself."""
    from realtime.bridge.worker import pump_budgets

    make_device("AWAY")
    make_device("CONTROL")
    budgets = pump_budgets()
    outcomes = ingest(alarm_backlog("CONTROL", 15), budgets)
    assert outcomes[SHED] == 25 and "alarm_flood" in active("CONTROL"), "the control: a backlog without credit"
    budgets = pump_budgets()
    budgets.away = (TimeAway.since(600, at=BASE.timestamp()),)
    outcomes = ingest(alarm_backlog("AWAY", 15), budgets)
    assert outcomes[SHED] == 0, f"a backlog of the time away was shed: {outcomes}"
    assert active("AWAY") == {}, "every alarm raised and cleared, no alarm_flood"


def test_the_credit_is_that_times_budget_only_and_lapses_after_the_backlog():
    make_device("FLOOD")
    make_device("BRIEF")
    budgets = PumpBudgets(alarm=Budget(1, 5), report=OFF, max_active_alarms=0)
    budgets.away = (TimeAway.since(60, at=BASE.timestamp()),)  # a minute away: 60 alarms' credit on top of 5
    flood = [message("FLOOD", "error", {"type": "x"}, at_s=n / 30000) for n in range(3000)]
    assert ingest(flood, budgets)[SHED] == 3000 - 65, "a flood in the backlog is bounded by the credit"
    budgets.away = (TimeAway.since(600, at=BASE.timestamp() + 1),)  # ten minutes away, then a backlog of 10 only
    assert ingest([message("BRIEF", "error", {"type": "y"}, at_s=1) for _ in range(10)], budgets)[SHED] == 0
    after = budgets.away[0].until - BASE.timestamp() + 1  # the backlog is over: 595 alarms' credit left unspent
    later = [message("BRIEF", "error", {"type": "y"}, at_s=after + n / 30000) for n in range(100)]
    assert ingest(later, budgets)[SHED] == 100 - 5, "credit left after the backlog must lapse"


def test_a_second_time_away_during_the_first_backlog_adds_its_credit_never_wipes_the_first():
    """Review: ten minutes away, half the backlog arrives, the link drops for 2 s (a flap; with several slots,
    another slot's reconnection); the rest of the ten minutes' backlog then arrives. The second time away
    replaced the first's credit with 2 s worth: 7 of 14 shed, a false alarm_flood, a clearing shed."""
    make_device("FLAP")
    budgets = PumpBudgets(alarm=Budget(1, 5), report=OFF, max_active_alarms=0)
    first = TimeAway.since(600, at=BASE.timestamp())
    budgets.away = (first,)
    assert ingest(alarm_backlog("FLAP", 15)[:16], budgets)[SHED] == 0
    budgets.away = times_away_open(budgets.away, TimeAway.since(2, at=BASE.timestamp() + 3))
    rest = [replace(said, received_at=BASE + timedelta(seconds=3.5)) for said in alarm_backlog("FLAP", 15)[16:]]
    assert ingest(rest, budgets)[SHED] == 0, "the rest of a ten-minute backlog was shed after a 2 s flap"
    assert active("FLAP") == {}, "every alarm raised and cleared, no alarm_flood"
    later = TimeAway.since(5, at=first.until + 1)
    assert times_away_open(budgets.away, later) == (later,), "a time away whose backlog is over is dropped"


def test_a_live_flood_long_after_the_backlog_is_still_shed():
    """Review: the credit was spendable for as long as the bridge was away: a pump flooding ten minutes after an
    hour's outage had an hour's alarm budget. The backlog's window is at most BACKLOG_MAX_S."""
    make_device("LATE")
    budgets = PumpBudgets(alarm=Budget(1, 5), report=OFF, max_active_alarms=0)
    budgets.away = (TimeAway.since(3600, at=BASE.timestamp()),)
    flood = [message("LATE", "error", {"type": "x", "severity": "high"}, at_s=600 + n / 30000) for n in range(3000)]
    assert ingest(flood, budgets)[SHED] == 3000 - 5 and "alarm_flood" in active("LATE")


def test_a_restart_that_never_connected_keeps_the_moment_the_bridge_last_held_the_broker():
    """Review: the bridge died holding the broker at T0; restarted at T1 it read "away since T0", but its first
    heartbeat set `broker_lost_since = T1`, so a second start (the broker still down) was told "away since T1":
    the backlog of T0..T1 uncredited, shed as a flood."""
    from devices.ingest_selectors import bridge_away_since
    from devices.services.records import bridge_heartbeat, bridge_started

    t0 = timezone.now() - timedelta(minutes=20)
    bridge_heartbeat(broker_connected=True, name="bridge", now=t0)  # then SIGKILL while holding the broker
    assert bridge_started(name="bridge", now=t0 + timedelta(minutes=10)) == t0.timestamp()
    bridge_heartbeat(broker_connected=False, name="bridge", now=t0 + timedelta(minutes=10, seconds=5))  # dies
    assert bridge_away_since(name="bridge") == t0.timestamp(), "a second start is told a shorter time away"
    assert bridge_started(name="bridge", now=t0 + timedelta(minutes=15)) == t0.timestamp()


def test_a_high_alarm_shed_after_a_flood_of_low_junk_is_named_in_the_summary():
    """The summary names the highest priority types (the severity read from the raw bytes), not the first ten."""
    make_device("FLOOD")
    budgets = PumpBudgets(alarm=Budget(1, 1), report=OFF, max_active_alarms=0)
    junk = [message("FLOOD", "error", {"type": f"noise_{n % 50}", "severity": "low"}) for n in range(3000)]
    ingest([*junk, message("FLOOD", "error", {"type": "occlusion", "message": "blocked"})], budgets)
    summary = active("FLOOD")["alarm_flood"]
    assert summary.details["alarmTypes"][0] == "occlusion", f"the shed occlusion is not named: {summary.message}"
    assert summary.details["alarmPriorities"]["occlusion"] == "high", "an alarm without severity is high"
    assert summary.details["alarmPriorities"]["noise_49"] == "low" and summary.details["otherTypes"] is True


LONG_TYPE = "Occlusion downstream of the pump detected during the bolus phase (pressure rising)"  # 84 characters


def shed(payload: bytes | dict) -> dict[str, str]:
    """The types (and priorities) a batch's summary names for one shed `error` of pump NAMED."""
    summary = ShedSummary()
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    summary.add_message(InboundMessage(topic="devices/NAMED/error", payload=raw, received_at=BASE))
    return summary.types.get("NAMED", {})


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"type": "Überdruck", "severity": "high"}, {"Überdruck": "high"}),  # json.dumps writes "\u00dcberdruck"
        ({"type": 'Pressure "high"', "severity": "medium"}, {'Pressure "high"': "medium"}),
        ({"type": LONG_TYPE, "severity": "low"}, {LONG_TYPE[:64]: "low"}),
        ({"message": "x" * 300, "type": "occlusion", "severity": "medium"}, {"occlusion": "medium"}),
        ({"type": 42, "severity": "low"}, {"42": "low"}),
        ({"errorMessage": "Occlusion", "severity": "warning"}, {"device_error": "medium"}),
        (b"OCCLUSION!! line blocked", {"unreadable_alarm": "high"}),
        ({"type": {"an": "object"}}, {"unreadable_alarm": "high"}),
    ],
    ids=["unicode-escape", "escaped-quote", "long-type", "type-after-300-bytes", "number", "no-type", "not-json",
         "object-type"],
)  # fmt: skip
def test_a_shed_alarm_is_named_as_it_would_have_been_raised_whatever_its_json_form(payload, named):
    """Review 15, finding 5: the raw reader read `"type": "…"` without escapes, up to 64 characters, in the first 300
    bytes; any other form was counted but neither named nor marked, so a later flood shedding a high "Überdruck" did
    not re-alert the acknowledged alarm_flood. Escapes are undone and a type of up to 200 characters read anywhere
    in the message; one the raw reader still cannot read is decoded in full (bounded), and named as admitted it
    would have been raised: `device_error` without a type, `unreadable_alarm` when it is not a readable alarm."""
    assert shed(payload) == named, f"{payload!r:.80} named {shed(payload)}"


def test_a_shed_literal_clearing_is_counted_not_named_and_pushes_no_alarm_out_of_the_names():
    """A shed `X_cleared` was named like an alarm, high when it carried no severity, so ten shed clearings pushed a
    shed medium alarm out of the ten names. One in free text that may be an alarm ("Occlusion not cleared") is
    named."""
    summary = ShedSummary()
    bodies = [{"type": "door_open", "severity": "medium"}, *({"type": f"fault_{n}_cleared"} for n in range(12)),
              {"type": "Occlusion not cleared"}]  # fmt: skip
    for body in bodies:
        summary.add_message(InboundMessage(topic="devices/NAMED/error", payload=json.dumps(body).encode()))
    assert summary.types["NAMED"] == {"door_open": "medium", "Occlusion not cleared": "high"}, summary.types
    assert summary.counts["NAMED"]["error"] == 14 and "NAMED" not in summary.unnamed


def test_shed_alarms_decoded_in_full_are_bounded_per_pump_and_batch():
    """Decoding is the fallback for what the raw reader cannot read; a pump flooding such forms gets a bounded number
    decoded per batch, the rest marked as more types than named ("and others")."""
    summary = ShedSummary()
    for n in range(200):
        summary.add_message(InboundMessage(topic="devices/NAMED/error", payload=json.dumps({"type": n}).encode()))
    assert len(summary.types["NAMED"]) == 10 and "NAMED" in summary.unnamed and summary.decoded["NAMED"] <= 32


def test_a_second_flood_shedding_an_escaped_high_alarm_re_alerts_the_acknowledged_flood_alarm():
    make_device("NAMED")
    budgets = PumpBudgets(alarm=Budget(1, 2), report=OFF, max_active_alarms=0)
    ingest([message("NAMED", "error", {"type": "door_open", "severity": "low"}, at_s=n / 1000) for n in range(5)],
           budgets)  # fmt: skip
    flood = active("NAMED")["alarm_flood"]
    alarm_acknowledge(alarm_id=flood.pk, user=make_user("nurse"), alerts=flood.alerts)
    second = [message("NAMED", "error", {"type": "door_open", "severity": "low"}, at_s=1 + n / 1000) for n in range(4)]
    second.append(message("NAMED", "error", {"type": "Überdruck", "severity": "high"}, at_s=1.005))
    ingest(second, budgets)
    flood = Alarm.objects.get(pk=flood.pk)
    assert "überdruck" not in active("NAMED"), "precondition: the high alarm was shed"
    assert flood.acknowledged_at is None and "Überdruck" in flood.message, (
        f"a second flood shed a high 'Überdruck' (sent as \\u00dc...), yet the acknowledged alarm_flood stays "
        f"silent: {flood.message!r}"
    )
