"""The monitor as the server renders it, before the page is live: the script's first render's figures and rows."""

from datetime import UTC, datetime

from devices.templatetags.units import duration, exact, fixed
from devices.views.monitor_before_live import alarms_shown, monitor_before_live

ORDER = {"drug": "Heparin", "flowRateMlMin": 1.0, "plannedVolumeMl": 100, "plannedTimeMin": 100, "bolus": None}


def session(status: str = "running", **fields) -> dict:
    return {"status": status, "order": ORDER, "createdAt": "2026-12-06T10:00:00+00:00", "reason": "confirmed", **fields}


def monitor(session_shown: dict | None, pump_state: str = "running", alarms: list | None = None) -> dict:
    status = {"connectivity": "online", "pumpState": pump_state, "lastSeenAt": "2026-12-06T10:00:05+00:00"}
    return {"status": status, "session": session_shown, "progress": None, "alarms": alarms or []}


def test_figures_as_format_js_writes_them():
    assert [fixed(0.125, 2, "mL"), fixed(1200, 3, "mL/h"), fixed(None, 2, "mL")] == ["0.13 mL", "1,200.000 mL/h", "—"]
    assert [exact(60.0), exact(0.1235), exact(12.34)] == ["60.0", "0.124", "12.34"]
    assert [duration(100), duration(45), duration(0.5), duration(None)] == ["1 h 40 min", "45 min", "< 1 min", "—"]


def test_a_running_order_with_its_read_back_and_its_buttons():
    shown = monitor_before_live(monitor(session(readBack="match", reportedParameters={"flowRateMlMin": 1.0})))
    assert shown["ordered"] == "60.0 mL/h · 100.0 mL · 1 h 40 min"
    assert shown["readback"]["verdict"] == "match"
    assert shown["readback"]["rows"][0] == ("Rate", "60.000 mL/h", "60.000 mL/h")
    assert shown["readback"]["rows"][1] == ("Volume", "100.00 mL", None), "not reported: the template's words"
    assert shown["active"] and shown["charted"] and shown["reason"] == ""


def test_an_infusion_without_an_order_shows_no_order_and_no_chart():
    shown = monitor_before_live(monitor(session("pending"), pump_state="running"))
    assert shown["unordered"] and shown["session"] is None and not shown["charted"]
    assert shown["pending_beside"] and shown["pending_drug"] == "Heparin"
    assert shown["readback"] is None, "a pending order has no read-back"


def test_an_idle_pump_has_no_session_no_read_back_and_no_chart():
    shown = monitor_before_live(monitor(None, pump_state="idle"))
    assert (shown["session"], shown["readback"], shown["charted"], shown["active"]) == (None, None, False, False)


def test_an_alarms_row():
    alarm = {"id": 7, "alerts": 2, "priority": "high", "type": "low_battery", "message": "Battery low", "count": 3,
             "raisedAt": "2026-12-06T10:00:00+00:00", "acknowledged": None, "escalation": {"level": 1}}  # fmt: skip
    [row] = alarms_shown([alarm], datetime(2026, 12, 6, 10, 2, 0, tzinfo=UTC))
    assert row["type"] == "Low battery"
    assert row["said"].startswith("Battery low (raised ") and row["said"].endswith(" · ×3) ")
    assert (row["lasting"], row["escalated"]) == ("for 2 min", 1)


def test_the_figures_of_a_running_pump_and_the_state_of_a_paused_one():
    progress = {"deliveredVolumeMl": 10.04, "volumeRemainingMl": 89.96, "progressPercent": 10.04, "flowRate": 1.0,
                "timeRemainingMin": 90, "infusionId": "INF"}  # fmt: skip
    shown = monitor_before_live({**monitor(session(infusionId="INF")), "progress": progress})["facts"]
    assert (shown["infused"], shown["remaining"], shown["percent"]) == ("10.0 mL", "90.0 mL", "10 %")
    assert (shown["time_left"], shown["rate"], shown["state"]) == ("1 h 30 min", "60.0 mL/h", None)
    paused = monitor_before_live({**monitor(session("paused"), "paused"), "progress": progress})["facts"]
    assert paused["state"] == "paused", "the template says the session's state where a paused pump has no rate"
