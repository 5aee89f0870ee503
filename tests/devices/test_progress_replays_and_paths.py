"""Progress on both paths (the bulk path for routine progress, the one-message path for the rest) agrees, through the
bridge's real batch ingest (review 18, after today's merges): a retained progress replay is no news on either (a
paused one from before a reboot ended the order running now, and set the pump's bootId back); a retained copy in a
batch is never shown as the newest nor sampled; progress after a silence clears `communication_lost` on either path;
a free-text clearing with a new errorCode each time is bound as an alarm; the legacy fixture and both simulators run
exactly as ordered raise no `parameter_mismatch`."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, Device, InfusionSession
from devices.states import SessionStatus
from realtime.bridge.budgets import Budget, PumpBudgets
from tests.clinical.scenario import legacy_steps
from tests.factories import make_device
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

AS_ORDERED = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": False}
OFF = Budget(0, 1)


def _active(device_id: str) -> list[tuple[str, str]]:
    return sorted(Alarm.objects.filter(device__device_id=device_id, state="active").values_list("type", "error_code"))


# ---- Finding: the one-message progress path does not know a report is retained (the bulk path does) -------------


def test_a_retained_paused_progress_replay_after_a_restart_is_no_news(django_capture_on_commit_callbacks):
    """a685d82 made a retained progress replay no news on the bulk path (`ProgressReport.retained`), but paused and
    completed progress go the one-message path: `pump_report_apply(retained=True)` -> `_progress` ->
    `progress_paused_apply` and `progress_apply`, which builds `ProgressReport(..., retained=False)`.
    The same pump as review 16's finding 4 (bootId, no seq, retains its progress): order X runs, is paused (its last
    progress, retained, says paused), the pump restarts (boot-2) and is idle: X interrupted. The bridge reconnects
    and the broker hands back the paused progress from before the restart: the idle pump is shown paused and a
    high `infusing_without_order` is raised for an infusion the pump is not running."""
    capture, device_id, now = django_capture_on_commit_callbacks, "R18_RET_PAUSED", timezone.now()
    make_device(device_id)
    ingest([report(device_id, "status", {"status": "online", "bootId": "boot-1"}, at=now)], capture)
    session = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    running = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 3.0, "infusionId": session.infusion_id,
               "bootId": "boot-1"}  # fmt: skip
    paused = {**running, "status": "paused", "flowRate": 0.0}
    ingest([report(device_id, "progress", running, at=now + timedelta(seconds=1))], capture)  # live: retain 0
    ingest([report(device_id, "progress", paused, at=now + timedelta(seconds=2))], capture)
    ingest([report(device_id, "status", {"status": "online", "bootId": "boot-2"}, at=now + timedelta(seconds=3))],
           capture)  # fmt: skip
    ingest([report(device_id, "status", {"status": "idle", "bootId": "boot-2"}, at=now + timedelta(seconds=4))],
           capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED
    before = _active(device_id)
    # the bridge reconnects: the broker replays the retained (paused) progress from before the restart
    ingest([report(device_id, "progress", paused, at=now + timedelta(seconds=60), retain=True)], capture)
    device = Device.objects.get(device_id=device_id)
    assert device.pump_state == "idle" and _active(device_id) == before, (
        f"a retained copy of paused progress from before the restart changed the idle pump: pump_state "
        f"{device.pump_state!r}, active alarms {before} -> {_active(device_id)}"
    )


def test_control_a_retained_running_progress_replay_on_the_bulk_path_is_no_news(django_capture_on_commit_callbacks):
    """The same replay, had the pump's last progress said running: the bulk path drops it (a685d82)."""
    capture, device_id, now = django_capture_on_commit_callbacks, "R18_RET_RUN", timezone.now()
    make_device(device_id)
    ingest([report(device_id, "status", {"status": "online", "bootId": "boot-1"}, at=now)], capture)
    session = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    running = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 3.0, "infusionId": session.infusion_id,
               "bootId": "boot-1"}  # fmt: skip
    ingest([report(device_id, "progress", running, at=now + timedelta(seconds=1))], capture)
    ingest([report(device_id, "status", {"status": "online", "bootId": "boot-2"}, at=now + timedelta(seconds=3))],
           capture)  # fmt: skip
    ingest([report(device_id, "status", {"status": "idle", "bootId": "boot-2"}, at=now + timedelta(seconds=4))],
           capture)  # fmt: skip
    before = _active(device_id)
    ingest([report(device_id, "progress", running, at=now + timedelta(seconds=60), retain=True)], capture)
    device = Device.objects.get(device_id=device_id)
    assert device.pump_state == "idle" and _active(device_id) == before


# ---- Finding: a free-text clearing with another errorCode passes the bound and is raised as an alarm --------------


def test_a_free_text_clearing_with_a_new_error_code_each_time_is_bounded(django_capture_on_commit_callbacks):
    """60f2b32 admits a free-text clearing when it clears an active alarm "by key, any errorCode"; 2df8240 made the
    bound count (type, errorCode) because `alarm_raise` opens a row per code. But `_clearing_apply` clears only
    the clearing's own errorCode (`alarm_clear(error_code=...)`): "Occlusion cleared" with errorCode E7 while
    (occlusion, E0) is active is admitted, clears nothing, is not literally `X_cleared`, and is raised as a new
    alarm (occlusion_cleared, E7) past the bound. A pump at the bound sending it with a new code each time holds
    any number of active alarms: review 15 finding 10 again."""
    make_device("R18_CAP")
    budgets = PumpBudgets(alarm=OFF, report=OFF, max_active_alarms=2)
    capture = django_capture_on_commit_callbacks
    ingest([report("R18_CAP", "error", {"type": "occlusion", "errorCode": "E0"}),
            report("R18_CAP", "error", {"type": "door_open"})], capture, budgets)  # fmt: skip
    ingest([report("R18_CAP", "error", {"type": "Occlusion cleared", "errorCode": f"E{n}", "severity": "high"})
            for n in range(1, 21)], django_capture_on_commit_callbacks, budgets)  # fmt: skip
    held = [pair for pair in _active("R18_CAP") if pair[0] != "alarm_flood"]
    assert len(held) <= 2, f"a pump bounded at 2 active alarms holds {len(held)}: {held}"


# ---- What held: the original firmware's infusion runs exactly its order: no false mismatch -----------------------


def test_the_legacy_fixture_run_exactly_as_ordered_raises_no_mismatch(django_capture_on_commit_callbacks):
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture, device_id, now = django_capture_on_commit_callbacks, "R18_LEGACY", timezone.now()
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())
    steps = legacy_steps("infusion", session.infusion_id, device_id)
    for n, step in enumerate(steps):
        ingest([report(device_id, "", step["payload"], topic=step["topic"], retain=step["retain"],
                       at=now + timedelta(seconds=n))], capture)  # fmt: skip
        assert not Alarm.objects.filter(type="parameter_mismatch").exists(), (step, _active(device_id))
    # the bridge reconnects: every retained message comes back
    for n, step in enumerate(s for s in steps if s["retain"]):
        ingest([report(device_id, "", step["payload"], topic=step["topic"], retain=True,
                       at=now + timedelta(seconds=100 + n))], capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.COMPLETED and session.read_back == "match", (
        session.status,
        session.read_back,
    )
    assert not Alarm.objects.filter(type__in=["parameter_mismatch", "parameters_unverified"]).exists()


# ---- Finding: in a bulk batch, the newest report may be a retained copy: shown, sampled, or hiding the fresh one ----


def test_a_retained_copy_after_fresh_progress_in_one_batch_is_not_shown_as_the_newest(
    django_capture_on_commit_callbacks,
):
    """`_pump_progress` takes `newest = reports[-1]` whatever its retain flag: the retained copy of an older progress
    that follows fresh progress in one batch (a link dropped and resubscribed within the batch window) becomes the
    pump's and the session's latest progress (delivered 3 mL shown after 10 mL), and is stored as a history sample
    at the newest receive time. review 16: a retained progress copy is state the broker kept, never news."""
    capture, device_id, now = django_capture_on_commit_callbacks, "R18_MIXED", timezone.now()
    make_device(device_id)
    session = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    old = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 3.0, "infusionId": session.infusion_id}
    fresh = {**old, "deliveredVolumeMl": 10.0}
    ingest([report(device_id, "progress", fresh, at=now + timedelta(seconds=1)),
            report(device_id, "progress", old, at=now + timedelta(seconds=1.01), retain=True)], capture)  # fmt: skip
    device = Device.objects.get(device_id=device_id)
    shown = (device.latest_progress or {}).get("deliveredVolumeMl")
    assert shown == 10.0, f"the pump's latest progress is the retained copy (delivered {shown} mL, fresh said 10)"


def test_a_retained_copy_of_another_infusion_after_fresh_progress_hides_the_fresh_one(
    django_capture_on_commit_callbacks,
):
    """Worse: the retained copy names the pump's previous (ended) infusion W; `_session_owning(pump, newest)` is None,
    so the whole batch returns None: order X's fresh progress is neither shown nor sampled."""

    capture, device_id, now = django_capture_on_commit_callbacks, "R18_MIXED_W", timezone.now()
    make_device(device_id)
    earlier = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    ingest([report(device_id, "completion", {"completed": True, "infusionId": earlier.infusion_id}, at=now)], capture)
    ingest([report(device_id, "status", {"status": "idle"}, at=now + timedelta(seconds=0.5))], capture)
    assert InfusionSession.objects.get(pk=earlier.pk).status == SessionStatus.COMPLETED
    session = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    fresh = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 1.0, "infusionId": session.infusion_id}
    stale = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 29.0, "infusionId": earlier.infusion_id}
    ingest([report(device_id, "progress", fresh, at=now + timedelta(seconds=2)),
            report(device_id, "progress", stale, at=now + timedelta(seconds=2.01), retain=True)], capture)  # fmt: skip
    device = Device.objects.get(device_id=device_id)
    shown = (device.latest_progress or {}).get("deliveredVolumeMl")
    assert shown == 1.0, f"order {session.infusion_id}'s fresh progress was not shown (latest progress: {shown})"


# ---- What held: the modern simulator running exactly its order (125 mL/h, a bolus, pauses) raises no mismatch ----


@pytest.mark.parametrize("legacy", [False, True], ids=["modern", "legacy"])
def test_the_simulator_running_its_order_raises_no_mismatch(legacy, django_capture_on_commit_callbacks):
    import json as _json

    from devices.services.sessions import infusion_start
    from realtime.simulator.device import PumpSettings, SimulatedPump
    from tests.factories import make_order
    from tests.realtime.simulator.conftest import RecordingLink

    capture, device_id, now = django_capture_on_commit_callbacks, f"R18_SIM_{int(legacy)}", timezone.now()
    make_device(device_id)
    pump = SimulatedPump(PumpSettings(device_id=device_id, legacy=legacy), {"HOST": "127.0.0.1", "PORT": 1})
    pump.link = RecordingLink()
    order = make_order(flow_rate_ml_min=round(125 / 60, 6), planned_volume_ml=20.0, planned_time_min=9.6,
                       bolus_enabled=True, bolus_volume_ml=2.0)  # fmt: skip
    session = infusion_start(device_id=device_id, order=order)
    pump._on_connected()
    command = {"command": "START_INFUSION", "payload": {"infusionId": session.infusion_id, **session.order},
               "timestamp": now.isoformat(), "commandId": "c-1"}  # fmt: skip
    pump._on_message(f"devices/{device_id}/commands", _json.dumps(command).encode())
    pump.accept()
    for _ in range(5):
        pump.tick(1.0)
    pump.pause(manual=True)
    pump.tick(1.0)
    pump.resume(manual=True)
    for _ in range(5):
        pump.tick(30.0)
    pump.pause()
    pump.resume()
    pump.tick(1.0)
    pump.complete()
    for n, message in enumerate(pump.link.published):
        ingest([report(device_id, "", message.payload, topic=message.topic, retain=message.retain,
                       at=now + timedelta(seconds=n))], capture)  # fmt: skip
        assert not Alarm.objects.filter(type="parameter_mismatch").exists(), (message, _active(device_id))
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.COMPLETED and session.read_back == "match", (
        session.status,
        session.read_back,
    )


# ---- Finding (high): a retained progress replay from the previous boot ends the order running now -----------------


def test_a_retained_paused_progress_from_the_previous_boot_does_not_interrupt_the_order_running_now(
    django_capture_on_commit_callbacks,
):
    """dc7eb50 restored 8aa71d5's `_pump_progress`, which looks for a restart again on the one-message path
    (`for item in reports: _restart_check(pump, item)`, outside `if not seen_already`); a5c1301 had removed that second
    look. `pump_report_apply` looks first with the message's retain flag (a retained replay is never a restart), but
    `progress_apply` wraps the report as `ProgressReport(..., retained=False)`: the second look takes the replay for
    news. A pump that retains its progress (bootId, no seq; review 16's finding 4): order X paused on boot-1 (its
    last progress, retained, says paused), the pump reboots (boot-2), X interrupted; order Y is started, confirmed
    and runs on boot-2. The bridge reconnects; the broker hands back X's paused progress from boot-1: "new bootId
    boot-1", Y ends `interrupted` with a high infusion_interrupted, on a pump that is running it."""
    capture, device_id, now = django_capture_on_commit_callbacks, "R18_RET_BOOT", timezone.now()
    make_device(device_id)
    at = lambda s: now + timedelta(seconds=s)  # noqa: E731
    ingest([report(device_id, "status", {"status": "online", "bootId": "boot-1"}, at=at(0))], capture)
    x = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    paused = {"status": "paused", "flowRate": 0.0, "deliveredVolumeMl": 3.0, "infusionId": x.infusion_id,
              "bootId": "boot-1"}  # fmt: skip
    ingest([report(device_id, "progress", {**paused, "status": "running", "flowRate": 2.0}, at=at(1))],
           capture)  # fmt: skip
    ingest([report(device_id, "progress", paused, at=at(2))], capture)  # live copies: retain 0
    ingest([report(device_id, "status", {"status": "online", "bootId": "boot-2"}, at=at(3))], capture)
    ingest([report(device_id, "status", {"status": "idle", "bootId": "boot-2"}, at=at(4))], capture)
    assert InfusionSession.objects.get(pk=x.pk).status == SessionStatus.INTERRUPTED
    y = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    running_y = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 0.5, "infusionId": y.infusion_id,
                 "bootId": "boot-2"}  # fmt: skip
    ingest([report(device_id, "progress", running_y, at=at(10))], capture)
    assert InfusionSession.objects.get(pk=y.pk).status == SessionStatus.RUNNING
    # the bridge reconnects: the broker replays the last retained progress, X's from before the reboot
    ingest([report(device_id, "progress", paused, at=at(20), retain=True)], capture)
    y = InfusionSession.objects.get(pk=y.pk)
    assert y.status == SessionStatus.RUNNING, (
        f"a retained progress replay from boot-1 ended order {y.infusion_id}, running on boot-2: status {y.status!r} "
        f"({y.status_reason!r}); active alarms {_active(device_id)}; pump boot_id "
        f"{Device.objects.get(device_id=device_id).boot_id!r}"
    )


def test_a_retained_paused_progress_without_boot_id_does_not_set_the_uptime_mark_back(
    django_capture_on_commit_callbacks,
):
    """The same second look for a pump without bootId (uptime `timestamp`): the retained replay from before the
    reboot carries the old, higher uptime; the second look stores it as the pump's last uptime, so the pump's next
    live report (its uptime since the reboot, lower) is "uptime went back": order Y, running, ends interrupted."""
    capture, device_id, now = django_capture_on_commit_callbacks, "R18_RET_UPTIME", timezone.now()
    make_device(device_id)
    at = lambda s: now + timedelta(seconds=s)  # noqa: E731
    x = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    paused = {"status": "paused", "flowRate": 0.0, "deliveredVolumeMl": 3.0, "timestamp": 900_000}
    ingest([report(device_id, "progress", {**paused, "status": "running", "flowRate": 2.0, "timestamp": 899_000},
                   at=at(1))], capture)  # fmt: skip
    ingest([report(device_id, "progress", paused, at=at(2))], capture)  # live copies: retain 0
    ingest([report(device_id, "test", {"test": "ESP32 MQTT working", "timestamp": 4_000}, at=at(3))], capture)
    ingest([report(device_id, "status", {"status": "idle", "timestamp": 4_100}, at=at(4))], capture)
    assert InfusionSession.objects.get(pk=x.pk).status == SessionStatus.INTERRUPTED
    y = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    running = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 0.5}
    ingest([report(device_id, "progress", {**running, "timestamp": 20_000}, at=at(20))], capture)
    assert InfusionSession.objects.get(pk=y.pk).status == SessionStatus.RUNNING
    ingest([report(device_id, "progress", paused, at=at(30), retain=True)], capture)  # the bridge reconnects
    ingest([report(device_id, "progress", {**running, "timestamp": 31_000}, at=at(31))], capture)
    y = InfusionSession.objects.get(pk=y.pk)
    assert y.status == SessionStatus.RUNNING, (
        f"after a retained replay from before the reboot, the next live progress ended order {y.infusion_id}: "
        f"status {y.status!r} ({y.status_reason!r}); active alarms {_active(device_id)}"
    )


# ---- Finding (low, pre-existing): the one-message progress path never clears communication_lost ------------------


@pytest.mark.parametrize("status", ["paused", "completed", "running-via-fallback"])
def test_progress_after_a_silence_clears_communication_lost_on_either_path(
    status, monkeypatch, django_capture_on_commit_callbacks
):
    """Contract: `communication_lost` is "cleared by the session's next progress or state report". The bulk path
    clears it in `_pump_heard`; the one-message path (`seen_already=True`) skips `_pump_heard` and
    `pump_report_apply._pump_seen` says "a silence alarm clears on progress or a state report, not here".
    A paused progress clears it through the pause (PAUSE_CLEARS); a completed one, or routine progress applied one by
    one after the bulk path failed, leaves it active."""
    from devices.services.pumps import pump_silence_check

    capture, device_id, now = django_capture_on_commit_callbacks, f"R18_SIL_{status[:4]}", timezone.now()
    make_device(device_id)
    session = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    body = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 1.0, "infusionId": session.infusion_id}
    ingest([report(device_id, "progress", body, at=now)], capture)
    assert pump_silence_check(device_id=device_id, now=now + timedelta(minutes=5))
    assert ("communication_lost", "") in _active(device_id)
    if status == "running-via-fallback":

        def broken(items):
            raise RuntimeError("bulk path failed")

        monkeypatch.setattr("realtime.bridge.batch.routine_progress_ingest", broken)
        later = {**body, "deliveredVolumeMl": 2.0}
    else:
        later = {**body, "status": status, "deliveredVolumeMl": 2.0}
    ingest([report(device_id, "progress", later, at=now + timedelta(minutes=5, seconds=1))], capture)
    assert ("communication_lost", "") not in _active(device_id), (
        f"progress ({status}) arrived after the silence; active alarms {_active(device_id)}"
    )


def test_the_legacy_replays_after_reconnect_leave_a_newer_order_alone(django_capture_on_commit_callbacks):
    """What held: the fixture's infusion X, then order Y (1 mL/min, no bolus) confirmed and running; the bridge
    reconnects and every retained message of X comes back (bolus 5 mL naming X, X's confirmation, actions, error,
    completion without infusionId): Y keeps running, read-back match, no mismatch."""
    from devices.services.sessions import infusion_start
    from tests.factories import make_order

    capture, device_id, now = django_capture_on_commit_callbacks, "R18_LEG_Y", timezone.now()
    make_device(device_id)
    x = infusion_start(device_id=device_id, order=make_order())
    steps = legacy_steps("infusion", x.infusion_id, device_id)
    for n, step in enumerate(steps):
        ingest([report(device_id, "", step["payload"], topic=step["topic"], retain=False,
                       at=now + timedelta(seconds=n))], capture)  # fmt: skip
    y = infusion_start(device_id=device_id, order=make_order(flow_rate_ml_min=1.0, planned_volume_ml=20.0,
                                                             planned_time_min=20.0, bolus_enabled=False,
                                                             bolus_volume_ml=0.0))  # fmt: skip
    y_steps = legacy_steps("infusion", y.infusion_id, device_id)
    confirmation = next(s for s in y_steps if s["topic"].endswith("/infusion"))
    confirmation["payload"]["parameters"] = {"flowRateMlMin": 1.0, "plannedVolumeMl": 20, "plannedTimeMin": 20,
                                             "bolusEnabled": False, "bolusVolumeMl": 0}  # fmt: skip
    t = now + timedelta(seconds=100)
    ingest([report(device_id, "", {"deviceId": device_id, "status": "received_start_command", "timestamp": 1_200_010},
                   topic=f"device/{device_id}/status", at=t)], capture)  # fmt: skip
    ingest([report(device_id, "", confirmation["payload"], topic=confirmation["topic"], at=t + timedelta(seconds=1))],
           capture)  # fmt: skip
    running = {"timeRemainingMin": 19.9, "volumeRemainingMl": 19.9, "timestamp": 1_300_000, "elapsedTimeMin": 0.1,
               "deliveredVolumeMl": 0.1, "progressPercent": 0.5, "flowRate": 1.0, "status": "running"}  # fmt: skip
    ingest([report(device_id, "progress", running, at=t + timedelta(seconds=2))], capture)
    for n, step in enumerate(s for s in steps if s["retain"]):
        ingest([report(device_id, "", step["payload"], topic=step["topic"], retain=True,
                       at=t + timedelta(seconds=10 + n))], capture)  # fmt: skip
    ingest([report(device_id, "progress", {**running, "timestamp": 1_320_000}, at=t + timedelta(seconds=30))], capture)
    y = InfusionSession.objects.get(pk=y.pk)
    assert y.status == SessionStatus.RUNNING and y.read_back == "match", (y.status, y.status_reason, y.read_back)
    assert not Alarm.objects.filter(session=y).exclude(state="cleared").exists(), _active(device_id)
