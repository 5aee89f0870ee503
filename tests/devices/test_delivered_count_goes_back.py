"""A pump's delivered count that goes back within one infusion (review 27, finding 2): what was delivered stays
delivered, so the session keeps the volume delivered in all and a count going back under it is alarmed.

`delivery_divergence` read only each report's count: when it went back, the window just started anew, and "beyond
the planned volume" read the latest count. A pump that reboots at 24 mL of a 30 mL order and runs the same infusion
again counting from 0 (a firmware that keeps the order across a power loss, not its count) delivered 54 mL of a 30 mL
order with no alarm left: the restart's HIGH `infusion_interrupted` was cleared as "running again as it was", and the
monitor showed 30 mL delivered. The same reset under one boot (a re-prime, or a pump reusing its bootId with no
`uptime`) raised nothing at all. Each report goes through the bridge's batch ingest (`tests/support/ingest.py`).
"""

from datetime import datetime, timedelta
from itertools import count

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from devices import payloads
from devices.models import Alarm, InfusionSession
from devices.services.alarm_rules import alarm_resolve
from devices.services.alarms import alarm_acknowledge
from protocol.payload_codec import payload_to_wire
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db
NURSES = count()


def _progress(session: InfusionSession, delivered: float, boot: str, seq: int, status: str = "running") -> dict:
    return {"status": status, "infusionId": session.infusion_id, "flowRate": 2.0,
            "deliveredVolumeMl": round(delivered, 2), "volumeRemainingMl": round(max(0.0, 30.0 - delivered), 2),
            "bootId": boot, "seq": seq}  # fmt: skip


def _run(capture, device_id: str, session: InfusionSession, *, at: datetime, from_ml: float, to_ml: float,
         boot: str, seq: int) -> tuple[datetime, int]:  # fmt: skip
    """Progress every 5 s at the ordered 2 mL/min from `from_ml` to `to_ml`, received from `at` on; returns when the
    next report would be received, and its `seq`."""
    delivered = from_ml
    while delivered <= to_ml + 1e-9:
        ingest([report(device_id, "progress", _progress(session, delivered, boot, seq), at=at)], capture)
        seq, at, delivered = seq + 1, at + timedelta(seconds=5), delivered + 2.0 * 5 / 60
    return at, seq


def _active(device_id: str) -> dict[str, str]:
    return dict(Alarm.objects.filter(device__device_id=device_id, state="active").values_list("type", "message"))


def test_an_infusion_run_again_from_zero_after_a_reboot_at_24_ml_of_30_is_alarmed(django_capture_on_commit_callbacks):
    capture, device_id = django_capture_on_commit_callbacks, "COUNT_REBOOT"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)  # 2 mL/min, 30 mL, 15 min
    at = timezone.now()
    named = {"infusionId": session.infusion_id}
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "A", "seq": 1, "uptime": 1_000},
                   at=at)], capture)  # fmt: skip
    at, _ = _run(capture, device_id, session, at=at + timedelta(seconds=1), from_ml=0.0, to_ml=24.0, boot="A", seq=2)
    assert InfusionSession.objects.get(pk=session.pk).status == "running", "precondition: running at 24 mL"
    # a power loss: the pump boots as B and runs the same infusion again, its count from 0
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 1, "uptime": 3_000},
                   at=at)], capture)  # fmt: skip
    at, seq = _run(capture, device_id, session, at=at + timedelta(seconds=1), from_ml=0.0, to_ml=30.0, boot="B", seq=2)
    ingest([report(device_id, "progress", _progress(session, 30.0, "B", seq, status="completed"), at=at)], capture)
    session = InfusionSession.objects.get(pk=session.pk)
    active = _active(device_id)
    assert "infusion_interrupted" in active, (
        f"the run after the reboot counts from 0 where 24 mL had been delivered: not 'as it was'; active {active}"
    )
    divergence = active.get("delivery_divergence", "")
    assert "24 mL before its count went back" in divergence and "more than the whole order" in divergence, (
        f"a HIGH alarm naming what was delivered in all, beyond the order: active {active}"
    )
    assert session.delivered_in_all_ml == pytest.approx(54.0, abs=0.1), (
        f"the session's record says {session.delivered_in_all_ml} mL delivered in all, 24 + 30 went in"
    )
    shown = payload_to_wire(payloads.session_body(session))["session"]
    assert shown["deliveredBeforeRunMl"] == pytest.approx(24.0, abs=0.1), (
        f"the monitor must be told what was delivered before the count went back: {shown}"
    )


def test_a_delivered_count_that_goes_back_while_running_is_alarmed(django_capture_on_commit_callbacks):
    capture, device_id = django_capture_on_commit_callbacks, "COUNT_SAME_BOOT"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at, seq = _run(capture, device_id, session, at=timezone.now(), from_ml=0.0, to_ml=24.0, boot="A", seq=1)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=1.0, boot="A", seq=seq)
    alarm = Alarm.objects.filter(session=session, type="delivery_divergence", state="active").first()
    assert alarm is not None and alarm.priority == "high", (
        f"the running infusion's delivered count went from 24 mL back to 0: active {_active(device_id)}"
    )
    assert "24" in alarm.message and "0 mL" in alarm.message, alarm.message
    seen = InfusionSession.objects.get(pk=session.pk).delivery_divergence
    assert seen["kind"] == "count_went_back" and seen["deliveredBeforeMl"] == pytest.approx(24.0, abs=0.1), seen


def test_the_volume_delivered_in_all_beyond_the_order_is_alarmed_as_beyond_planned(django_capture_on_commit_callbacks):
    """The count going back alarmed and resolved at the pump ("checked"), the pump goes on: 24 + 7 mL in all of a
    30 mL order is beyond it, as 31 mL counted in one run would be."""
    capture, device_id = django_capture_on_commit_callbacks, "COUNT_BEYOND"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at, seq = _run(capture, device_id, session, at=timezone.now(), from_ml=0.0, to_ml=24.0, boot="A", seq=1)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=1.0, boot="A", seq=seq)
    reset = Alarm.objects.get(session=session, type="delivery_divergence", state="active")
    user = make_user("charge")
    user.user_permissions.add(Permission.objects.get(codename="resolve_alarm"))
    alarm_resolve(alarm_id=reset.pk, user=user, reason="checked_at_pump", alerts=reset.alerts)
    at, seq = _run(capture, device_id, session, at=at, from_ml=1.2, to_ml=6.0, boot="A", seq=seq)
    assert not Alarm.objects.filter(session=session, type="delivery_divergence", state="active").exists(), (
        "24 + 6 mL is the order: nothing beyond it yet"
    )
    _run(capture, device_id, session, at=at, from_ml=6.2, to_ml=7.0, boot="A", seq=seq)
    alarm = Alarm.objects.filter(session=session, type="delivery_divergence", state="active").first()
    assert alarm is not None and "more than the whole order" in alarm.message, _active(device_id)
    seen = InfusionSession.objects.get(pk=session.pk).delivery_divergence
    assert seen["kind"] == "beyond_planned" and seen["deliveredVolumeMl"] > 30.05, seen


def test_a_count_that_only_climbs_keeps_one_run(django_capture_on_commit_callbacks):
    """The control: a count that never goes back is one run; delivered in all is its count, nothing alarmed."""
    capture, device_id = django_capture_on_commit_callbacks, "COUNT_CLIMBS"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    _run(capture, device_id, session, at=timezone.now(), from_ml=0.0, to_ml=29.0, boot="A", seq=1)
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.delivered_in_all_ml == pytest.approx(29.0, abs=0.1), session.delivered_in_all_ml
    assert not {"delivery_divergence", "infusion_interrupted"} & _active(device_id).keys(), _active(device_id)
    shown = payload_to_wire(payloads.session_body(session))["session"]
    assert shown.get("deliveredBeforeRunMl") is None, shown


def test_the_admin_lists_the_volume_delivered_in_all(django_capture_on_commit_callbacks, admin_client):
    """The session's record in the admin: 24 mL, then the count back to 0 and on to 1 mL, is 25 mL delivered."""
    capture, device_id = django_capture_on_commit_callbacks, "COUNT_ADMIN"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at, seq = _run(capture, device_id, session, at=timezone.now(), from_ml=0.0, to_ml=24.0, boot="A", seq=1)
    _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=1.0, boot="A", seq=seq)
    page = admin_client.get("/admin/devices/infusionsession/").content.decode()
    assert '<td class="field-delivered_in_all">25.0</td>' in page, (
        "the admin's session list must say 25.0 mL delivered in all"
    )


def _acknowledged(alarm: Alarm) -> Alarm:
    """`alarm` acknowledged by a nurse who saw its latest alert (on her way to the pump)."""
    nurse = make_user(f"nurse{next(NURSES)}")
    nurse.user_permissions.add(Permission.objects.get(codename="acknowledge_alarm"))
    alarm_acknowledge(alarm_id=alarm.pk, user=nurse, alerts=alarm.alerts)
    return Alarm.objects.get(pk=alarm.pk)


def _divergence(session: InfusionSession) -> Alarm:
    return Alarm.objects.get(session=session, type="delivery_divergence", state="active")


def test_the_order_given_again_after_the_count_going_back_was_acknowledged_alerts_again(
    django_capture_on_commit_callbacks,
):
    """Review 29, finding 1: 24 mL counted, the count back to 0 under one boot (a re-prime): HIGH count_went_back,
    "the pump may give the order again", acknowledged. The pump then gives the whole order again, 24 + 30 mL of a
    30 mL order: what the alarm warned of is now a fact, and the acknowledged alarm kept saying only that the count
    went back, no alert (`delivery_check` skipped every raise while a divergence was active)."""
    capture, device_id = django_capture_on_commit_callbacks, "COUNT_BEYOND_AFTER_ACK"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at, seq = _run(capture, device_id, session, at=timezone.now(), from_ml=0.0, to_ml=24.0, boot="A", seq=1)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=1.0, boot="A", seq=seq)
    went_back = _acknowledged(_divergence(session))
    at, seq = _run(capture, device_id, session, at=at, from_ml=1.2, to_ml=6.0, boot="A", seq=seq)
    assert _divergence(session).alerts == went_back.alerts, "24 + 6 mL is the order: no news yet"
    _run(capture, device_id, session, at=at, from_ml=6.2, to_ml=30.0, boot="A", seq=seq)
    alarm = _divergence(session)
    assert alarm.pk == went_back.pk and alarm.acknowledged_at is None and alarm.alerts == went_back.alerts + 1, (
        f"54 mL delivered in all of a 30 mL order must alert again, once (alerts {went_back.alerts} -> "
        f"{alarm.alerts}, acknowledged {alarm.acknowledged_at}): {alarm.message!r}"
    )
    assert "more than the whole order" in alarm.message and "24 mL before its count went back" in alarm.message, (
        alarm.message
    )
    seen = InfusionSession.objects.get(pk=session.pk).delivery_divergence
    assert seen["kind"] == "beyond_planned" and seen["deliveredBeforeMl"] == pytest.approx(24.0, abs=0.1), seen


def test_beyond_the_order_after_a_reboot_alerts_once_both_alarms_were_acknowledged(django_capture_on_commit_callbacks):
    """The same after a power loss: the interruption raised again (the run counts from 0 where 24 mL had been
    delivered) and the count going back, both acknowledged; the pump gives the order again."""
    capture, device_id = django_capture_on_commit_callbacks, "COUNT_BEYOND_AFTER_REBOOT"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at, named = timezone.now(), {"infusionId": session.infusion_id}
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "A", "seq": 1, "uptime": 1_000},
                   at=at)], capture)  # fmt: skip
    at, _ = _run(capture, device_id, session, at=at + timedelta(seconds=1), from_ml=0.0, to_ml=24.0, boot="A", seq=2)
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 1, "uptime": 3_000},
                   at=at)], capture)  # fmt: skip
    at, seq = _run(capture, device_id, session, at=at + timedelta(seconds=1), from_ml=0.0, to_ml=1.0, boot="B", seq=2)
    for alarm in Alarm.objects.filter(session=session, state="active"):
        _acknowledged(alarm)
    went_back = _divergence(session)
    _run(capture, device_id, session, at=at, from_ml=1.2, to_ml=30.0, boot="B", seq=seq)
    alarm = _divergence(session)
    assert alarm.acknowledged_at is None and alarm.alerts == went_back.alerts + 1, (
        f"54 mL of 30 after a reboot, both alarms acknowledged: nothing alerts ({alarm.message!r})"
    )
    assert "more than the whole order" in alarm.message, alarm.message


def test_beyond_the_order_after_two_counts_gone_back_alerts_once_not_at_each_report(django_capture_on_commit_callbacks):
    """Two counts gone back, each acknowledged (24 mL, back to 0, on to 3 mL, back to 0 again): the order given again
    alerts once with all of it counted (27 mL before), and the reports after it, still beyond, do not alert at each
    report (the alarm is raised once while active; acknowledged, it stays so until a further tenth of the order)."""
    capture, device_id = django_capture_on_commit_callbacks, "COUNT_BEYOND_TWICE_BACK"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at, seq = _run(capture, device_id, session, at=timezone.now(), from_ml=0.0, to_ml=24.0, boot="A", seq=1)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=3.0, boot="A", seq=seq)
    _acknowledged(_divergence(session))
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=3.0, boot="A", seq=seq)
    assert InfusionSession.objects.get(pk=session.pk).delivered_in_all_ml == pytest.approx(30.0, abs=0.1), (
        "precondition: 24 + 3 + 3 mL in all"
    )
    before = _acknowledged(_divergence(session))
    at, seq = _run(capture, device_id, session, at=at, from_ml=3.2, to_ml=4.0, boot="A", seq=seq)
    alarm = _acknowledged(_divergence(session))
    assert alarm.alerts == before.alerts + 1 and "27 mL before its count went back" in alarm.message, (
        f"31 mL of 30 after two counts gone back: alerts {before.alerts} -> {alarm.alerts}, {alarm.message!r}"
    )
    _run(capture, device_id, session, at=at, from_ml=4.2, to_ml=6.0, boot="A", seq=seq)  # 33 mL: within a tenth more
    after = _divergence(session)
    assert (after.alerts, after.acknowledged_at) == (alarm.alerts, alarm.acknowledged_at), (
        f"still beyond the order, already told and acknowledged: alerts {alarm.alerts} -> {after.alerts}"
    )
