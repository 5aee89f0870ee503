"""A pump's status saying what it does with the infusion must not be lost to one odd field (review 19's leftovers).

A `status` (on `devices/{id}/status` or the legacy `device/{id}/status`) saying `stopped`, `completed`, `paused`,
`running`, `started`, `idle`/`healthy` or `rejected`, refused by the schema for one odd field (a battery at 101, a
`timestamp` object, a negative `seq`), was only dead-lettered: review 15 raised `device_degraded` for a refused
`degraded`/`issue` and nothing else, so the infusion stayed shown in its old state (running with its live rate, or
paused) until the pump's next readable report. Such a status is now read without its odd field and applied as an
accepted one would be; one whose status word, `deviceId` or named infusion cannot be read moves nothing and, while an
infusion is on the pump, raises `unreadable_report`.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, DeadLetter, Device, DeviceEvent, InfusionSession
from devices.states import PumpState, SessionStatus
from tests.factories import make_device
from tests.realtime.bridge.test_refused_reports_about_the_infusion import running_infusion, shown
from tests.support.ingest import ingest, report, send, start_sent

pytestmark = pytest.mark.django_db

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip
ODD_FIELDS = [{"batteryLevel": 101}, {"timestamp": {"ms": 973010}}, {"seq": -1, "bootId": "b"}]
ODD_IDS = ["battery-101", "ts-object", "seq-negative"]
# What each status word moves a running (or, for `running`/`started`, a paused) infusion to, and the pump's state
MOVES = {
    "stopped": (SessionStatus.STOPPED, PumpState.IDLE),
    "completed": (SessionStatus.INTERRUPTED, PumpState.IDLE),  # 2 mL still to go: not the order delivered (review 44)
    "paused": (SessionStatus.PAUSED, PumpState.PAUSED),
    "running": (SessionStatus.RUNNING, PumpState.RUNNING),
    "started": (SessionStatus.RUNNING, PumpState.RUNNING),
    "idle": (SessionStatus.INTERRUPTED, PumpState.IDLE),  # 2 mL still to go: the idle rule's interrupted
    "healthy": (SessionStatus.INTERRUPTED, PumpState.IDLE),
}


def unreadable(device_id: str) -> Alarm:
    alarms = list(Alarm.objects.filter(device__device_id=device_id, state="active", type="unreadable_report"))
    assert len(alarms) == 1, "expected one active unreadable_report, got " + str(
        list(Alarm.objects.filter(device__device_id=device_id, state="active").values_list("type", flat=True))
    )
    return alarms[0]


# ---- read without the odd field: applied as an accepted status ----------------------------------------------------


@pytest.mark.parametrize("odd_field", ODD_FIELDS, ids=ODD_IDS)
@pytest.mark.parametrize("word", list(MOVES))
def test_a_status_refused_for_an_odd_field_moves_the_infusion_as_the_pump_said(
    django_capture_on_commit_callbacks, word, odd_field
):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_ODD")
    if word in ("running", "started"):
        send(capture, "ST_ODD", "status", {"status": "paused", "infusionId": session.infusion_id}, 0.5)
    body = {"deviceId": "ST_ODD", "status": word, "infusionId": session.infusion_id, **odd_field}
    send(capture, "ST_ODD", "status", body, 1)
    status, pump_state = shown(session)[:2]
    assert (status, pump_state) == MOVES[word], (
        f"the pump reported {word!r} ({sorted(odd_field)} refused): the screen shows the infusion {status}, the pump "
        f"{pump_state} (expected {MOVES[word]})"
    )
    assert "unreadable_report" not in shown(session)[2], "a status read in part is no unreadable report"
    letter = DeadLetter.objects.get()
    assert letter.reason == "schema" and letter.detail.startswith("applied without "), (
        f"the refusal is not kept as such: {letter.reason} {letter.detail}"
    )
    stored = DeviceEvent.objects.filter(device__device_id="ST_ODD", kind="mqtt.status").latest("id").payload
    assert stored["status"] == word and stored["refusedFields"] == [name for name in odd_field if name != "bootId"]
    assert Device.objects.get(device_id="ST_ODD").reported_status == word


@pytest.mark.parametrize("word", ["stopped", "paused"])
def test_a_refused_status_on_the_legacy_topic_naming_no_infusion_moves_the_one_on_the_pump(
    django_capture_on_commit_callbacks, word
):
    """The original firmware publishes on `device/{id}/status`, names no infusion, and sends its uptime as a number
    `timestamp`: one odd field (a battery of 101 from a bad gauge) lost its `stopped`."""
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_LEGACY")
    body = {"deviceId": "ST_LEGACY", "status": word, "timestamp": 973010, "batteryLevel": 101}
    ingest([report("ST_LEGACY", "status", body, 1, topic="device/ST_LEGACY/status")], capture)
    assert shown(session)[:2] == MOVES[word], f"a refused {word!r} on the legacy topic moved nothing"


def test_a_refused_rejected_status_ends_the_waiting_order_as_rejected(django_capture_on_commit_callbacks):
    """The original firmware's only rejection is a `rejected` status: refused, the order kept "waiting for someone at
    the pump to accept" until its time-out."""
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture = django_capture_on_commit_callbacks
    make_device("ST_REJECT", has_presence=True)
    session = infusion_start(device_id="ST_REJECT", order=make_order())
    start_sent(session)  # the pump's answers name no infusion: about it once its START went out
    send(capture, "ST_REJECT", "status", {"status": "received_start_command", "batteryLevel": "80"}, 0.5)
    assert InfusionSession.objects.get(pk=session.pk).delivered_at is not None, "the refused delivery was lost"
    send(capture, "ST_REJECT", "status", {"status": "rejected", "timestamp": {"ms": 5}}, 1)
    assert shown(session) == (SessionStatus.REJECTED, PumpState.IDLE, []), "the pump's refused rejection was lost"


def test_a_refused_running_status_naming_the_waiting_order_runs_it(django_capture_on_commit_callbacks):
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture = django_capture_on_commit_callbacks
    make_device("ST_EVID", has_presence=True)
    session = infusion_start(device_id="ST_EVID", order=make_order())
    send(capture, "ST_EVID", "status", {"status": "running", "infusionId": session.infusion_id, "batteryLevel": -1}, 1)
    status, pump_state, _alarms = shown(session)
    assert (status, pump_state) == (SessionStatus.RUNNING, PumpState.RUNNING), (
        f"the pump reported the waiting order running (battery refused): it is {status}, the pump {pump_state}"
    )


def test_a_refused_status_about_another_infusion_moves_nothing(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_OTHER")
    send(capture, "ST_OTHER", "status", {"status": "stopped", "infusionId": "inf_older", "batteryLevel": 101}, 1)
    assert shown(session)[:2] == (SessionStatus.RUNNING, PumpState.RUNNING), "a Stop of another infusion moved mine"


def test_a_refused_offline_is_presence_and_a_refused_battery_is_not_shown_as_the_old_one(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    make_device("ST_PRES", has_presence=True)
    send(capture, "ST_PRES", "status", {"status": "online", "batteryLevel": 80}, 0)
    send(capture, "ST_PRES", "status", {"status": "idle", "batteryLevel": 250}, 1)
    device = Device.objects.get(device_id="ST_PRES")
    assert device.battery_level is None, f"the pump's battery could not be read and {device.battery_level} % is shown"
    send(capture, "ST_PRES", "status", {"status": "offline", "timestamp": {"ms": 1}}, 2)
    device.refresh_from_db()
    assert device.connectivity(now=timezone.now() + timedelta(seconds=3)) == "offline", "its Last Will was lost"


def test_a_refused_status_is_applied_after_the_progress_before_it_in_the_batch(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_BATCH")
    progress = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 29.0, "infusionId": session.infusion_id}
    stopped = {"status": "stopped", "infusionId": session.infusion_id, "batteryLevel": 101}
    ingest([report("ST_BATCH", "progress", progress, 1), report("ST_BATCH", "status", stopped, 1.1)], capture)
    assert shown(session) == (SessionStatus.STOPPED, PumpState.IDLE, []), "the progress before it came after it"


def test_a_redelivered_copy_of_a_status_read_in_part_is_a_duplicate(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_DUP")
    body = {"status": "paused", "infusionId": session.infusion_id, "seq": 7, "bootId": "b1", "batteryLevel": 101}
    send(capture, "ST_DUP", "status", body, 1)
    send(capture, "ST_DUP", "status", {"status": "running", "infusionId": session.infusion_id, "seq": 8,
                                        "bootId": "b1"}, 2)  # fmt: skip
    outcomes = send(capture, "ST_DUP", "status", body, 3)
    assert outcomes["duplicate"] == 1 and shown(session)[0] == SessionStatus.RUNNING, (
        f"a copy of the paused status (seq 7) was applied again after the pump resumed: {dict(outcomes)}"
    )


# ---- restarts: a status read without its uptime or bootId tells none falsely -------------------------------------


def modern(device_id: str, body: dict, *, uptime: object = None, boot_id: object = "b00t") -> dict:
    extra = {"uptime": uptime} if uptime is not None else {}
    return {"deviceId": device_id, **body, "bootId": boot_id, "timestamp": timezone.now().isoformat(), **extra}


def test_a_status_read_without_its_uptime_tells_no_restart_and_leaves_the_uptime_mark(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_UP")
    ids = {"infusionId": session.infusion_id}
    start = timezone.now()
    ingest([report("ST_UP", "status", modern("ST_UP", {"status": "running", **ids}, uptime=600_000), at=start)],
           capture)  # fmt: skip
    for n, uptime in enumerate([{"ms": 2_500}, True, "x" * 65], 1):  # refused: an object, a boolean, too long
        ingest([report("ST_UP", "status", modern("ST_UP", {"status": "running", **ids}, uptime=uptime),
                       at=start + timedelta(seconds=n))], capture)  # fmt: skip
    device = Device.objects.get(device_id="ST_UP")
    assert (session.__class__.objects.get(pk=session.pk).status, device.last_uptime_ms) == ("running", 600_000), (
        "a status whose uptime could not be read moved the pump's uptime mark or told a restart"
    )
    assert not DeviceEvent.objects.filter(device=device, kind="pump.restarted").exists()
    later = start + timedelta(seconds=10)
    ingest([report("ST_UP", "status", modern("ST_UP", {"status": "idle"}, uptime=2_500), at=later)], capture)
    assert DeviceEvent.objects.filter(device=device, kind="pump.restarted").exists(), (
        "the reboot after it (uptime 600,000 -> 2,500 under the same bootId) was not told"
    )


def test_a_status_read_without_its_boot_id_is_not_judged_by_its_timestamp(django_capture_on_commit_callbacks):
    """Without its `bootId` a status looked like the original firmware's, whose number `timestamp` is its uptime:
    a pump with a `bootId` whose clock is a small number would be told restarted and its infusion interrupted."""
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_BOOT")
    ids = {"infusionId": session.infusion_id}
    start = timezone.now()
    ingest([report("ST_BOOT", "status", modern("ST_BOOT", {"status": "running", **ids}, uptime=600_000), at=start)],
           capture)  # fmt: skip
    odd = {"deviceId": "ST_BOOT", "status": "paused", **ids, "bootId": 42, "timestamp": 2_500, "uptime": 601_000}
    ingest([report("ST_BOOT", "status", odd, at=start + timedelta(seconds=1))], capture)
    assert shown(session)[:2] == (SessionStatus.PAUSED, PumpState.PAUSED), (
        f"a paused status read without its bootId told a restart: the infusion is {shown(session)[0]}"
    )
    device = Device.objects.get(device_id="ST_BOOT")
    assert (device.boot_id, device.last_uptime_ms) == ("b00t", 600_000), "its marks moved"


def test_a_status_read_without_its_uptime_under_a_new_boot_id_is_a_restart(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_NEW")
    start = timezone.now()
    ingest([report("ST_NEW", "status", modern("ST_NEW", {"status": "running", "infusionId": session.infusion_id},
                                              uptime=600_000), at=start)], capture)  # fmt: skip
    odd = modern("ST_NEW", {"status": "idle"}, uptime={"ms": 2_500}, boot_id="b00t-2")
    ingest([report("ST_NEW", "status", odd, at=start + timedelta(seconds=1))], capture)
    device = Device.objects.get(device_id="ST_NEW")
    assert DeviceEvent.objects.filter(device=device, kind="pump.restarted").exists(), "a new bootId is a restart"
    assert (device.boot_id, device.last_uptime_ms) == ("b00t-2", None), "the old run's uptime kept for the new run"
    assert shown(session)[0] == SessionStatus.INTERRUPTED


# ---- what cannot be read: nothing applied; unreadable_report while an infusion is on the pump --------------------


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"status": "stopped", "infusionId": 17}, "that it stopped"),
        ({"status": "paused", "currentInfusion": {"infusionId": ["x"]}}, "that it paused"),
        ({"status": "idle", "currentInfusion": "inf_1"}, "that it is idle"),
        ({"status": "stoped", "infusionId": "x"}, "its state"),
        ({"status": 3}, "its state"),
        ({"status": "stopped", "deviceId": "ST_B"}, "that it stopped"),
    ],
    ids=["id-number", "current-id-list", "current-text", "word-odd", "word-number", "another-pump"],
)
def test_a_status_whose_essential_field_cannot_be_read_moves_nothing_and_alarms(
    django_capture_on_commit_callbacks, body, said
):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_JUNK")
    running_infusion(capture, "ST_B")
    send(capture, "ST_JUNK", "status", {**body, "batteryLevel": 50}, 1)
    assert shown(session)[:2] == (SessionStatus.RUNNING, PumpState.RUNNING), f"{body} moved the infusion"
    alarm = unreadable("ST_JUNK")
    assert (alarm.priority, alarm.session_id) == ("high", session.pk), (alarm.priority, alarm.session_id)
    assert f"The pump reported {said} in a message that could not be read" in alarm.message, alarm.message
    assert DeadLetter.objects.count() == 1
    assert shown(InfusionSession.objects.get(device__device_id="ST_B")) == (
        SessionStatus.RUNNING, PumpState.RUNNING, []), "pump A's status moved pump B"  # fmt: skip


def test_a_status_that_is_not_json_alarms_while_an_infusion_is_on_the_pump(django_capture_on_commit_callbacks):
    from realtime.bridge.ingest import InboundMessage

    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_RAW")
    ingest([InboundMessage("device/ST_RAW/status", b'{"status": "stopped", "batteryLevel": 5,,}')], capture)
    assert "that it stopped" in unreadable("ST_RAW").message
    assert shown(session)[0] == SessionStatus.RUNNING


@pytest.mark.parametrize("body", [{"status": "idle", "infusionId": 17}, {"status": "online", "infusionId": 17},
                                  {"status": "testing", "infusionId": 17}])  # fmt: skip
def test_an_unreadable_status_with_no_infusion_on_the_pump_or_about_presence_raises_nothing(
    django_capture_on_commit_callbacks, body
):
    """No infusion the screen could show wrongly (a pump's heartbeat), or a word that says nothing of the infusion:
    dead-lettered and counted only."""
    capture = django_capture_on_commit_callbacks
    make_device("ST_IDLE", has_presence=True)
    send(capture, "ST_IDLE", "status", body, 1)
    if body["status"] != "idle":
        session = running_infusion(capture, "ST_ON")
        send(capture, "ST_ON", "status", body, 2)
        assert shown(session)[2] == [], f"{body} alarmed while it says nothing of the infusion"
    assert not Alarm.objects.filter(type="unreadable_report").exists()


def test_a_refused_degraded_status_still_raises_device_degraded_and_no_unreadable_report(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_DEG")
    send(capture, "ST_DEG", "status", {"status": "degraded", "infusionId": 17, "batteryLevel": 101}, 1)
    send(capture, "ST_DEG", "status", {"status": "issue", "batteryLevel": 101}, 2)
    assert shown(session) == (SessionStatus.RUNNING, PumpState.RUNNING, ["device_degraded"])
    assert "could not be read" in Alarm.objects.get(type="device_degraded").message


def test_the_unreadable_status_alarm_clears_when_its_infusion_moves_and_a_replay_raises_nothing(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_CLEAR")
    body = {"status": "stopped", "infusionId": 17}
    ingest([report("ST_CLEAR", "status", body, 1, retain=True)], capture)
    ingest([report("ST_CLEAR", "status", body, 2, retain=True)], capture)
    assert unreadable("ST_CLEAR").count == 1, "a retained replay counted as news"
    send(capture, "ST_CLEAR", "status", {"status": "running", "infusionId": session.infusion_id}, 3)
    assert unreadable("ST_CLEAR"), "a running heartbeat cleared it: the pump may have stopped"
    send(capture, "ST_CLEAR", "status", {"status": "stopped", "infusionId": session.infusion_id}, 4)
    assert shown(session) == (SessionStatus.STOPPED, PumpState.IDLE, []), "the alarm stayed once the infusion ended"


def test_a_refused_fields_list_the_pump_sends_itself_is_not_trusted(django_capture_on_commit_callbacks):
    """`refusedFields` is the server's note on a report read in part: a pump sending one (an unknown field, stored and
    never trusted) must not make the server skip its restart check or forget its battery."""
    capture = django_capture_on_commit_callbacks
    session = running_infusion(capture, "ST_FORGE")
    forged = {"refusedFields": ["bootId", "batteryLevel"]}
    start = timezone.now()
    ingest([report("ST_FORGE", "status", modern("ST_FORGE", {"status": "running", "infusionId": session.infusion_id,
                                                             "batteryLevel": 80, **forged}, uptime=600_000),
                   at=start)], capture)  # fmt: skip
    ingest([report("ST_FORGE", "status", modern("ST_FORGE", {"status": "idle", **forged}, uptime=2_500),
                   at=start + timedelta(seconds=1))], capture)  # fmt: skip
    device = Device.objects.get(device_id="ST_FORGE")
    restarted = DeviceEvent.objects.filter(device=device, kind="pump.restarted").exists()
    assert restarted, "a forged refusedFields hid a reboot (uptime 600,000 -> 2,500 ms under one bootId)"
    assert device.battery_level == 80, "a forged refusedFields blanked the battery"
