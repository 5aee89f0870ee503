"""The record of an infusion the pump reports paused is not ended either (review 31, finding 2).

A pump that holds the order paused (a line change, a nurse's pause at the bedside), not reported offline, that said so
within HEARTBEAT_TIMEOUT_S, is no ghost: "End record…" is refused (409 `session_paused`), as for one it reports
running (`test_end_record_of_a_running_pump.py`). It says so in a paused progress of the order or in a `paused` status
naming it or none (a legacy pump publishes nothing else while paused). Before, the end was accepted, the pump shown
free for a new order, and its resumption at the bedside ran with a high `confirmed_late`. A `paused` status older
than that, or one naming another infusion, leaves the end to the person: the pump may not hold this one.
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from devices.models import Alarm, Device, InfusionSession
from devices.services.pumps import pump_presence_unvouched
from devices.states import SessionStatus
from tests.devices.test_end_record_of_a_running_pump import RUNNING, end_record, running_order
from tests.support.ingest import send

pytestmark = pytest.mark.django_db

SILENT_S = settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 1


def _refused_as_paused(response, session: InfusionSession) -> None:
    status = InfusionSession.objects.get(pk=session.pk).status
    device = Device.objects.get(pk=session.device_id)
    assert (response.status_code, status) == (409, SessionStatus.PAUSED), (
        f"End record of an order its pump (presence {device.presence}) reported paused 1 s before: "
        f"HTTP {response.status_code}, the order now {status}"
    )
    refusal = response.json()
    assert refusal["code"] == "session_paused" and "reported it paused" in refusal["message"], refusal
    assert "stop it" in refusal["message"], refusal


def test_the_record_of_an_infusion_the_pump_reports_paused_just_now_is_not_ended(
    client, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_PAUSED", capture)
    named = {**RUNNING, "infusionId": session.infusion_id}
    send(capture, "ENDREC_PAUSED", "status", {"status": "paused", "infusionId": session.infusion_id}, 0.5)
    send(capture, "ENDREC_PAUSED", "progress", {**named, "status": "paused", "flowRate": 0.0}, 1.0)
    _refused_as_paused(end_record(client, session), session)
    send(capture, "ENDREC_PAUSED", "progress", {**named, "deliveredVolumeMl": 6.1, "volumeRemainingMl": 23.9}, 3.0)
    alarms = list(
        Alarm.objects.filter(device__device_id="ENDREC_PAUSED", state="active").values_list("type", flat=True)
    )
    assert "confirmed_late" not in alarms, f"the pump resumed at the bedside: active alarms {alarms}"


def test_a_legacy_pump_that_says_only_paused_is_not_taken_for_a_ghost(client, django_capture_on_commit_callbacks):
    """Its last progress (running) is older than the heartbeat: its `paused` status, naming no infusion, is its word."""
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_LEGACY", capture, progress_at_s=-SILENT_S - 5)
    send(capture, "ENDREC_LEGACY", "status", {"status": "paused"}, -1.0)
    send(capture, "ENDREC_LEGACY", "status", {"status": "online"}, -0.5)  # presence says nothing of the infusion
    _refused_as_paused(end_record(client, session), session)


def test_the_record_of_an_infusion_paused_before_the_heartbeat_is_ended(client, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_OLDPAUSE", capture, progress_at_s=-SILENT_S - 5)
    send(capture, "ENDREC_OLDPAUSE", "status", {"status": "paused", "infusionId": session.infusion_id}, -SILENT_S)
    assert end_record(client, session).status_code == 200, "a pump silent past its heartbeat may be the ghost"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


def test_a_paused_status_naming_another_infusion_does_not_hold_this_one(client, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_OTHER", capture, progress_at_s=-SILENT_S)
    send(capture, "ENDREC_OTHER", "status", {"status": "paused", "infusionId": "inf_swapped_pumps_own"}, -1.0)
    assert end_record(client, session).status_code == 200, "the pump holds another infusion: this one is the ghost"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


def test_the_record_of_an_infusion_paused_on_an_offline_pump_is_ended(client, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_PAUSED_OFF", capture)
    send(capture, "ENDREC_PAUSED_OFF", "status", {"status": "paused", "infusionId": session.infusion_id}, 0.5)
    send(capture, "ENDREC_PAUSED_OFF", "status", {"status": "offline"}, 1.0)  # its Last Will
    assert end_record(client, session).status_code == 200, "an offline pump may be the ghost (swapped, restarted)"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


# ---- review 46, M1: a pump online by its presence may be silent while paused, and still holds the infusion ----------

LONG_PAUSED_S = 15 * 60.0  # a line change, a patient away for a scan: a pause of a quarter of an hour


def _ordered_long_ago(device_id: str, capture) -> InfusionSession:
    """A confirmed order placed before LONG_PAUSED_S and the minute before, reported running then."""
    session = running_order(device_id, capture, progress_at_s=-LONG_PAUSED_S - 5)
    ordered_at = timezone.now() - timedelta(seconds=LONG_PAUSED_S + 60)
    InfusionSession.objects.filter(pk=session.pk).update(created_at=ordered_at)
    return InfusionSession.objects.get(pk=session.pk)


def _paused_long_ago(device_id: str, capture, *, has_presence: bool = True) -> InfusionSession:
    """A confirmed order its pump (presence: its live `online`) paused LONG_PAUSED_S ago, silent since."""
    session = _ordered_long_ago(device_id, capture)
    Device.objects.filter(device_id=device_id).update(has_presence=has_presence)
    send(capture, device_id, "status", {"status": "online"}, -LONG_PAUSED_S - 4)  # as it connected, its Will set
    named = {**RUNNING, "infusionId": session.infusion_id, "status": "paused", "flowRate": 0.0}
    send(capture, device_id, "progress", named, -LONG_PAUSED_S)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.PAUSED, "precondition: paused"
    return session


def test_a_pump_online_by_its_presence_holds_its_paused_infusion_however_long_it_is_silent(
    client, django_capture_on_commit_callbacks
):
    """Silence while paused is normal for a pump with presence (shared/protocol.md): only its Last Will says it went.
    Before, the end was accepted 10 s into the pause, the pump shown free, and its resume ran with confirmed_late."""
    session = _paused_long_ago("ENDREC_PRESENCE_PAUSED", django_capture_on_commit_callbacks)
    assert Device.objects.get(device_id="ENDREC_PRESENCE_PAUSED").connectivity() == "online", "precondition"
    _refused_as_paused(end_record(client, session), session)


def test_a_paused_status_of_a_pump_online_by_its_presence_holds_too(client, django_capture_on_commit_callbacks):
    """Its `paused` status (naming the infusion, or none) is its word as its paused progress is."""
    capture = django_capture_on_commit_callbacks
    session = _ordered_long_ago("ENDREC_PRESENCE_STATUS", capture)
    send(capture, "ENDREC_PRESENCE_STATUS", "status", {"status": "online"}, -LONG_PAUSED_S - 4)
    send(capture, "ENDREC_PRESENCE_STATUS", "status", {"status": "paused"}, -LONG_PAUSED_S)
    send(capture, "ENDREC_PRESENCE_STATUS", "status", {"status": "testing"}, -60.0)  # says nothing of the infusion
    _refused_as_paused(end_record(client, session), session)


def test_the_refusal_by_presence_names_the_way_out(client, django_capture_on_commit_callbacks):
    """Should the pump not hold it after all, a Stop expires (nothing to stop): reconnecting the pump is the way out
    (review 47, M2)."""
    session = _paused_long_ago("ENDREC_PRESENCE_WAY_OUT", django_capture_on_commit_callbacks)
    refusal = end_record(client, session).json()
    assert "reconnect it" in refusal["message"], refusal


# ---- review 47, M2: a paused word holds by presence only on the pump's current connection ------------------------

BOOT = "0000002a"  # an unseeded random(): the same bootId at every boot


def _paused_long_ago_with_boot(device_id: str, capture) -> InfusionSession:
    session = _ordered_long_ago(device_id, capture)
    send(capture, device_id, "status", {"status": "online", "bootId": BOOT, "seq": 1}, -LONG_PAUSED_S - 4)
    named = {**RUNNING, "infusionId": session.infusion_id, "status": "paused", "flowRate": 0.0, "bootId": BOOT,
             "seq": 2}  # fmt: skip
    send(capture, device_id, "progress", named, -LONG_PAUSED_S)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.PAUSED, "precondition: paused"
    return session


@pytest.mark.parametrize("will", [True, False], ids=["its Will came", "no Will (taken over)"])
def test_a_paused_word_from_before_the_pump_connected_again_does_not_hold(
    will, client, django_capture_on_commit_callbacks
):
    """Paused 15 min ago; it went away 10 min ago and came back online 9 min ago under its reused bootId, no uptime
    (its reboot not told), and said nothing of the infusion since: it may have forgotten it. Before, End record was
    refused for ever ("no ghost: the pump reported it paused 901 s ago … stop it"), a Stop expiring at a pump with
    nothing to stop, the record Paused and the pump busy."""
    capture, pump = django_capture_on_commit_callbacks, "ENDREC_REBOOTED"
    session = _paused_long_ago_with_boot(pump, capture)
    if will:
        send(capture, pump, "status", {"status": "offline", "bootId": BOOT}, -600)
    send(capture, pump, "status", {"status": "online", "bootId": BOOT, "seq": 1}, -540)  # its run before's key: a copy
    send(capture, pump, "status", {"status": "online", "bootId": BOOT, "seq": 2}, -500)
    assert Device.objects.get(device_id=pump).connectivity() == "online", "precondition: online by its presence"
    response = end_record(client, session)
    assert response.status_code == 200, f"a paused word from its connection before holds for ever: {response.json()}"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


def test_a_paused_word_on_the_pumps_new_connection_holds(client, django_capture_on_commit_callbacks):
    """Back online, it says it holds the infusion paused: that word is of its current connection."""
    capture, pump = django_capture_on_commit_callbacks, "ENDREC_REBOOTED_PAUSED"
    session = _paused_long_ago_with_boot(pump, capture)
    send(capture, pump, "status", {"status": "online", "bootId": BOOT, "seq": 1}, -540)
    send(capture, pump, "status", {"status": "paused", "infusionId": session.infusion_id, "bootId": BOOT, "seq": 2},
         -539)  # fmt: skip
    _refused_as_paused(end_record(client, session), session)


def test_a_paused_infusion_of_a_pump_without_presence_silent_past_the_heartbeat_may_be_ended(
    client, django_capture_on_commit_callbacks
):
    """No Last Will: nothing would ever say it went, so its silence is all the server can go by (its `online` says
    nothing of a connection the broker watches)."""
    session = _paused_long_ago("ENDREC_NO_PRESENCE", django_capture_on_commit_callbacks, has_presence=False)
    assert end_record(client, session).status_code == 200, "a pump without presence silent that long may be the ghost"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


def test_a_paused_infusion_of_a_pump_whose_will_came_may_be_ended(client, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = _paused_long_ago("ENDREC_PRESENCE_GONE", capture)
    send(capture, "ENDREC_PRESENCE_GONE", "status", {"status": "offline"}, -60.0)  # its Last Will
    assert end_record(client, session).status_code == 200, "an offline pump may be the ghost (swapped, restarted)"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


def test_a_paused_infusion_of_a_pump_whose_presence_no_broker_vouches_for_may_be_ended(
    client, django_capture_on_commit_callbacks
):
    """The broker that held its Will restarted since the pump was last heard (`pump_presence_unvouched`): nothing
    would say it went, so it is judged by its silence, as a pump without presence."""
    session = _paused_long_ago("ENDREC_UNVOUCHED", django_capture_on_commit_callbacks)
    assert pump_presence_unvouched(device_id="ENDREC_UNVOUCHED", broker_started_at=timezone.now(), now=timezone.now())
    assert end_record(client, session).status_code == 200, "no broker holds its Will: it may be the ghost"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


def test_a_running_infusion_of_a_pump_online_by_its_presence_silent_past_the_heartbeat_may_be_ended(
    client, django_capture_on_commit_callbacks
):
    """A running infusion is reported every second: silent, it may be the ghost whatever the pump's presence
    (review 30; `communication_lost` is raised meanwhile). Only a pause may be silent."""
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_PRESENCE_RUNNING", capture, progress_at_s=-SILENT_S)
    send(capture, "ENDREC_PRESENCE_RUNNING", "status", {"status": "online"}, -SILENT_S - 1)
    assert end_record(client, session).status_code == 200, "a pump silent while running may be the ghost"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


# ---- review 46, L2: the newest of the pump's words is the one the refusal tells ----------------------------------


def test_the_refusal_tells_the_pumps_newest_word_paused_after_running(client, django_capture_on_commit_callbacks):
    """Its running progress 3 s ago, then its `paused` status 2 s ago: it holds the infusion paused. The refusal said
    "the pump reported it running 3 s ago", read from the older progress first."""
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_NEWEST", capture, progress_at_s=-3.0)
    send(capture, "ENDREC_NEWEST", "status", {"status": "paused", "infusionId": session.infusion_id}, -2.0)
    response = end_record(client, session)
    _refused_as_paused(response, session)
    assert "reported it paused 2 s ago" in response.json()["message"], response.json()


def test_the_refusal_tells_the_pumps_newest_word_running_after_paused(client, django_capture_on_commit_callbacks):
    """Resumed at the bedside: its `paused` status, then its running progress of the order."""
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_RESUMED", capture, progress_at_s=-4.0)
    send(capture, "ENDREC_RESUMED", "status", {"status": "paused", "infusionId": session.infusion_id}, -3.0)
    send(capture, "ENDREC_RESUMED", "progress", {**RUNNING, "infusionId": session.infusion_id}, -1.0)
    refusal = end_record(client, session).json()
    assert refusal["code"] == "session_running" and "reported it running 1 s ago" in refusal["message"], refusal
