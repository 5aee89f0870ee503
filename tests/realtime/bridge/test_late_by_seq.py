"""The rule of late messages (`devices/services/late_reports.py`, review 44 F1 and F2) through the bridge's real commit
path and database: a live message numbered below one applied under its pump's `bootId` rewinds nothing, is recorded
(`pump.report_late`) and counted; an alarm it raises is still raised. What is never late: a message without `seq`
(the original firmware), a retained copy, a Last Will, a `seq` that wrapped, a tick's second message, the messages of
a reboot under a reused `bootId` under keys the run before used for their kind (the others, sent before the status
telling the reboot, are held and applied after it). A tick's partner of another kind under the key exempts nothing
(review 45, F1). The end-to-end cases are `tests/clinical/test_late_retransmissions.py`."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, Device, DeviceEvent, InfusionSession, MessageReceipt
from devices.services.late_reports import REPORT_LATE_EVENT, SEQ_LATE_WINDOW
from devices.services.sessions import infusion_start
from devices.views.event_log import TEXT_OF_KIND
from realtime import metrics
from realtime.bridge.ingest import APPLIED, InboundMessage
from tests.factories import make_device, make_order
from tests.realtime.bridge.test_batch import running
from tests.realtime.bridge.test_batch_receipts import Bridge

pytestmark = pytest.mark.django_db
BOOT = "b00t"
START = timezone.now()


def sent(kind: str, seq: int | None, at_s: float, *, boot: str | None = BOOT, retain: bool = False,
         **body) -> InboundMessage:  # fmt: skip
    """A message of P1 received `at_s` s after the start; without `seq` and `bootId` when `seq` is None (legacy)."""
    key = {"seq": seq, "bootId": boot} if seq is not None else {}
    return InboundMessage(topic=f"devices/P1/{kind}", payload=json.dumps({"deviceId": "P1", **body, **key}).encode(),
                          received_at=START + timedelta(seconds=at_s), retain=retain)  # fmt: skip


def late(device_id: str = "P1") -> list[tuple[str, int, bool]]:
    """(kind, seq, raised) of each message the pump's log records as late."""
    events = DeviceEvent.objects.filter(device__device_id=device_id, kind=REPORT_LATE_EVENT).order_by("id")
    return [(event.payload["kind"], event.payload["seq"], event.payload["raised"]) for event in events]


def active(alarm_type: str) -> Alarm | None:
    return Alarm.objects.filter(device__device_id="P1", type=alarm_type, state="active").first()


def status_of(session: InfusionSession) -> str:
    return InfusionSession.objects.get(pk=session.pk).status


def late_counted(kind: str) -> float:
    return metrics.MESSAGES_LATE.labels(kind=kind)._value.get()


def test_a_late_clearing_clears_nothing_and_is_recorded_and_counted():
    running("P1")
    bridge = Bridge()
    occlusion = {"type": "occlusion_detected", "severity": "high"}
    before = late_counted("error")
    bridge.commit([sent("error", 3, 0, **occlusion), sent("error", 5, 1, **occlusion)])
    outcomes = bridge.commit([sent("error", 4, 2, type="occlusion_cleared", severity="high")])
    assert outcomes[APPLIED] == 1, outcomes
    assert active("occlusion_detected") is not None, "a clearing numbered 4 cleared the occlusion the pump said at 5"
    assert late() == [("error", 4, False)]
    event = DeviceEvent.objects.get(device__device_id="P1", kind=REPORT_LATE_EVENT)
    assert TEXT_OF_KIND[REPORT_LATE_EVENT](event, event.payload) == (
        "The pump's error message numbered 4 came late, after its 5: not applied"
    )
    assert late_counted("error") == before + 1
    assert Device.objects.get(device_id="P1").seq_applied == 5, "a late message moves no mark"


def test_a_late_running_progress_does_not_resume_a_paused_infusion_in_its_own_batch_or_the_next():
    """Routine progress goes the bulk path (`progress_apply_many`); in the paused status's own batch it is applied
    after it, as in a batch of its own."""
    session = running("P1")
    bridge = Bridge()
    running_at = {"status": "running", "infusionId": session.infusion_id, "flowRate": 2.0}
    bridge.commit([sent("progress", 2, 0, deliveredVolumeMl=6.0, **running_at)])
    bridge.commit([sent("status", 5, 1, status="paused", infusionId=session.infusion_id),
                   sent("progress", 4, 2, deliveredVolumeMl=6.5, **running_at)])  # fmt: skip
    assert status_of(session) == "paused", "a progress numbered 4 resumed the infusion the pump paused at 5"
    bridge.commit([sent("progress", 3, 3, deliveredVolumeMl=6.3, **running_at)])
    assert status_of(session) == "paused" and Device.objects.get(device_id="P1").pump_state == "paused"
    assert Device.objects.get(device_id="P1").latest_progress["deliveredVolumeMl"] == 6.0
    assert late() == [("progress", 4, False), ("progress", 3, False)]


def test_a_late_action_at_the_pump_moves_no_session():
    """The review's variant: a MANUAL_PAUSE numbered 5 arriving after the MANUAL_RESUME numbered 6."""
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id, "source": "device_screen"}
    bridge.commit([sent("actions", 4, 0, action="MANUAL_PAUSE", **ids), sent("actions", 6, 1, action="MANUAL_RESUME",
                                                                           **ids)])  # fmt: skip
    assert status_of(session) == "running"
    bridge.commit([sent("actions", 5, 2, action="MANUAL_PAUSE", **ids)])
    assert status_of(session) == "running", "a pause numbered 5 paused the infusion the pump resumed at 6"
    assert late() == [("actions", 5, False)]


def test_a_late_alarm_is_still_raised_when_in_doubt():
    """An alarm the pump sent is raised even late (its clearing may have come first): a false alarm a nurse resolves
    is the lesser harm than an alarm the pump sent and nobody saw."""
    running("P1")
    bridge = Bridge()
    bridge.commit([sent("status", 7, 0, status="running")])
    bridge.commit([sent("error", 6, 1, type="air_in_line", severity="high")])
    assert active("air_in_line") is not None
    assert late() == [("error", 6, True)]


def test_without_seq_the_original_firmware_is_applied_in_arrival_order_as_before():
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    bridge.commit([sent("status", None, 0, status="paused", **ids)])
    bridge.commit([sent("progress", None, 1, status="running", flowRate=2.0, deliveredVolumeMl=6.0, **ids)])
    assert status_of(session) == "running", "the original firmware's running progress after its pause runs again"
    assert late() == [] and Device.objects.get(device_id="P1").seq_applied is None


def test_a_retained_copy_and_a_last_will_are_never_late():
    """A retained copy follows its own rules (state, not news); the Last Will's body (and `seq`) were written when the
    pump connected, so it is numbered below all the pump said since, and must still say offline."""
    make = running("P1")
    device = Device.objects.get(pk=make.device_id)
    device.has_presence = True
    device.save(update_fields=["has_presence"])
    bridge = Bridge()
    bridge.commit([sent("status", 1, 0, status="online"), sent("status", 9, 1, status="running")])
    bridge.commit([sent("status", 3, 2, status="testing", retain=True, batteryLevel=40)])
    bridge.commit([sent("status", 1, 3, status="offline")])  # the Will, built at connect with that connection's seq
    device = Device.objects.get(device_id="P1")
    assert device.presence == "offline", "the Last Will was taken for a late message"
    assert device.seq_applied == 9 and late() == []


def test_an_online_on_reconnecting_moves_no_mark_so_what_the_pump_queued_meanwhile_is_news():
    """paho and esp-mqtt publish the reconnect's `online` before the QoS 1 messages queued while the link was down."""
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    bridge.commit([sent("status", 10, 0, status="running", **ids)])
    bridge.commit([sent("status", 13, 90, status="online"), sent("status", 12, 90.1, status="paused", **ids)])
    assert status_of(session) == "paused" and late() == []


def test_a_seq_that_wrapped_and_a_ticks_second_message_are_not_late():
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    bridge.commit([sent("status", 65_535, 0, status="running", **ids)])
    bridge.commit([sent("status", 0, 1, status="paused", **ids)])  # a 16-bit seq wrapped
    assert status_of(session) == "paused" and Device.objects.get(device_id="P1").seq_applied == 0
    bridge.commit([sent("progress", 1, 2, status="paused", deliveredVolumeMl=6.0, **ids),
                   sent("status", 1, 2.001, status="running", **ids)])  # one tick, one seq  # fmt: skip
    assert status_of(session) == "running" and late() == []
    assert 65_535 > SEQ_LATE_WINDOW, "a wrap is further back than a late message can be"


def test_a_reboot_under_a_reused_boot_id_without_uptime_numbers_under_used_keys_and_is_applied():
    """No status tells this reboot (no `uptime`): its statuses reuse the run before's statuses' keys, which no late
    message can (a late message is the first of its kind under its key), so they are applied as the pump says them."""
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    bridge.commit([sent("status", seq, seq, status="running", **ids) for seq in range(4)])
    bridge.commit([sent("status", 0, 60, status="online"), sent("status", 1, 61, status="idle")])
    assert status_of(session) != "running", "the rebooted pump's idle ends the infusion by its own rule"
    assert Device.objects.get(device_id="P1").pump_state == "idle" and late() == []


def test_a_reboot_told_by_its_status_retires_the_mark_and_applies_what_the_new_run_sent_before_it():
    """A new run's message under a key the run before never used (its seq 0 was lost) comes before the status that
    tells the reboot: late then, held as copies are, and applied once the reboot is told."""
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    bridge.commit([sent("status", seq, seq, status="running", uptime=600_000 + 1000 * seq, **ids)
                   for seq in (1, 2, 3)])  # fmt: skip
    bridge.commit([sent("status", 0, 60, status="testing", batteryLevel=77)])
    assert Device.objects.get(device_id="P1").battery_level != 77 and late() == [("status", 0, False)]
    bridge.commit([sent("status", 1, 61, status="online", uptime=2_500)])  # the reboot, told by its uptime
    device = Device.objects.get(device_id="P1")
    assert status_of(session) == "interrupted"
    assert device.battery_level == 77, "the new run's status held as late was not applied after the reboot was told"
    assert device.seq_applied is None, "the run before's mark is retired (an `online` starts none)"
    bridge.commit([sent("status", 2, 62, status="idle")])
    assert Device.objects.get(device_id="P1").seq_applied == 2 and len(late()) == 1


# The order `make_order` makes, as its pump's confirmation reports it.
ORDER_PARAMETERS = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
                    "bolusVolumeMl": 5.0}  # fmt: skip


def running_on_evidence() -> InfusionSession:
    """P1's order running on the pump's evidence (its `running` status naming it, seq 4), its confirmation (seq 3,
    sent first) not yet received: read back `unverified`."""
    make_device("P1")
    session = infusion_start(device_id="P1", order=make_order())
    Bridge().commit([sent("status", 4, 0, status="running", infusionId=session.infusion_id)])
    session.refresh_from_db()
    assert (session.status, session.read_back) == ("running", "unverified"), (session.status, session.read_back)
    return session


@pytest.mark.parametrize(
    ("reported", "read_back", "alarm"),
    [
        ({**ORDER_PARAMETERS, "bolusVolumeMl": 10.0}, "mismatch", "parameter_mismatch"),
        (ORDER_PARAMETERS, "match", None),
    ],
    ids=["bolus-off-the-order", "the-order"],
)
def test_a_late_confirmation_is_read_back_for_an_infusion_running_on_the_pumps_evidence(reported, read_back, alarm):
    """Review 45, F2: a confirmation overtaken by the pump's `running` status was dropped as late, the read-back left
    "unverified" and a bolus off the order in it never alarmed. What it reports is read back; it moves nothing."""
    session = running_on_evidence()
    Bridge().commit([sent("infusion", 3, 1, infusionId=session.infusion_id, confirmed=True, parameters=reported)])
    session.refresh_from_db()
    assert (session.status, session.read_back) == ("running", read_back), (session.status, session.read_back)
    assert (active("parameter_mismatch") is not None) == (alarm is not None), "the bolus off the order not alarmed"
    assert active("parameters_unverified") is None, "still unverified though the pump reported its parameters"
    assert late() == [("infusion", 3, False)], "the confirmation came late: recorded so"


def test_a_late_confirmation_runs_no_order_the_pump_said_nothing_of_since():
    """A late confirmation of an order still pending, the pump having said `idle` since (seq 4): the order does not run
    on it (what the pump said since is newer); it is recorded as late."""
    make_device("P1")
    session = infusion_start(device_id="P1", order=make_order())
    bridge = Bridge()
    bridge.commit([sent("status", 4, 0, status="idle")])
    bridge.commit([sent("infusion", 3, 1, infusionId=session.infusion_id, confirmed=True, parameters=ORDER_PARAMETERS)])
    assert status_of(session) == "pending", "a confirmation numbered below the pump's idle ran the order"
    assert late() == [("infusion", 3, False)]


def test_a_ticks_progress_under_one_seq_does_not_hide_its_late_status():
    """Review 45, F1: a pump numbering its ticks sends progress 4 and status 4 (`running`), whose first send is lost;
    the nurse pauses at the pump (status 5); the stack resends status 4. Its key was used by progress 4, so it was
    taken for a reused key (a reboot's) and applied: the paused infusion shown "Running"."""
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    bridge.commit([sent("progress", 4, 0, status="running", flowRate=2.0, deliveredVolumeMl=6.0, **ids)])
    bridge.commit([sent("status", 5, 1, status="paused", **ids)])
    assert status_of(session) == "paused"
    bridge.commit([sent("status", 4, 2, status="running", **ids)])
    assert status_of(session) == "paused", "a status numbered 4 resumed the infusion the pump paused at 5"
    assert Device.objects.get(device_id="P1").pump_state == "paused"
    assert late() == [("status", 4, False)]


def test_a_ticks_progress_under_one_seq_does_not_hide_its_late_clearing():
    """The alarm variant: the occlusion (3) clears at tick 4 (progress 4 and the clearing 4, whose first send is lost)
    and occludes again (5); the clearing resent after it clears nothing."""
    session = running("P1")
    bridge = Bridge()
    occlusion = {"type": "occlusion_detected", "severity": "high"}
    bridge.commit([sent("error", 3, 0, **occlusion),
                   sent("progress", 4, 1, status="running", flowRate=2.0, deliveredVolumeMl=6.0,
                        infusionId=session.infusion_id),
                   sent("error", 5, 2, **occlusion)])  # fmt: skip
    bridge.commit([sent("error", 4, 3, type="occlusion_cleared", severity="high")])
    assert active("occlusion_detected") is not None, "a clearing numbered 4 cleared the occlusion the pump said at 5"
    assert late() == [("error", 4, False)]


def test_a_receipt_from_before_kinds_were_kept_exempts_nothing():
    """A receipt stored before migration 0040 has kind 0: which message it was is not known, so a message under its key
    below the mark is late (the upgrade's one cost: a reused `bootId`'s run after it is judged as if of other kinds)."""
    session = running("P1")
    MessageReceipt.objects.create(device=Device.objects.get(device_id="P1"), boot_id=BOOT, device_seq=4, digest=9,
                                  received_at=START)  # fmt: skip
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    bridge.commit([sent("status", 5, 1, status="paused", **ids)])
    bridge.commit([sent("status", 4, 2, status="running", **ids)])
    assert status_of(session) == "paused" and late() == [("status", 4, False)]


def test_a_reused_boot_ids_new_run_under_a_key_the_run_before_gave_another_kind_is_applied_once_the_reboot_is_told():
    """A pump reusing its `bootId` numbers its new run from 0 under the run before's keys; a key the run before used
    for another kind (progress 2) does not exempt the new run's status 2 from the late rule: it is late until the
    status telling the reboot, held, then applied. A key the run before used for the same kind (status 1) still
    exempts (`test_a_reboot_under_a_reused_boot_id_without_uptime_numbers_under_used_keys_and_is_applied`)."""
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    bridge.commit([sent("status", 1, 0, status="running", uptime=600_000, **ids),
                   sent("progress", 2, 1, status="running", flowRate=2.0, deliveredVolumeMl=6.0, **ids),
                   sent("status", 3, 2, status="running", uptime=602_000, **ids)])  # fmt: skip
    bridge.commit([sent("status", 2, 60, status="testing", batteryLevel=77)])  # the rebooted pump's first message
    assert Device.objects.get(device_id="P1").battery_level != 77 and late() == [("status", 2, False)]
    bridge.commit([sent("status", 3, 61, status="online", uptime=2_500)])  # the reboot, told by its uptime
    device = Device.objects.get(device_id="P1")
    assert status_of(session) == "interrupted"
    assert device.battery_level == 77, "the new run's status held as late was not applied after the reboot was told"
    bridge.commit([sent("status", 4, 62, status="idle")])
    assert Device.objects.get(device_id="P1").seq_applied == 4 and len(late()) == 1


def test_a_held_status_of_the_new_run_never_overwrites_its_newer_status_applied_before_the_reboot_was_told():
    """Review 47, M1: a pump reusing its `bootId` that numbers its ticks (the run before: statuses 1, 3, 5, progress 2,
    4). Its new run sends status 2 `testing` 77 % (a key the run before gave a progress: late, held), status 3 `issue`
    12 % (a key of a status: applied at once), then `online` 4 telling the reboot. The held status 2 was applied
    after it, last: the screen showed `testing`, 77 %, the pump's newest word being `issue`, 12 %. Now it is recorded
    as late (overtaken in its own run) and applied nothing."""
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    flow = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 20.0, **ids}
    bridge.commit([sent("status", 1, 0, status="running", uptime=600_000, **ids),
                   sent("progress", 2, 1, **flow),
                   sent("status", 3, 2, status="running", uptime=602_000, **ids),
                   sent("progress", 4, 3, **flow),
                   sent("status", 5, 4, status="running", uptime=604_000, **ids)])  # fmt: skip
    assert Device.objects.get(device_id="P1").seq_applied == 5
    bridge.commit([sent("status", 2, 60, status="testing", batteryLevel=77)])  # late: held
    bridge.commit([sent("status", 3, 61, status="issue", batteryLevel=12)])  # under a status's key: applied
    assert Device.objects.get(device_id="P1").battery_level == 12
    bridge.commit([sent("status", 4, 62, status="online", uptime=5_000)])  # the reboot, told by its uptime
    device = Device.objects.get(device_id="P1")
    assert status_of(session) == "interrupted"
    assert (device.reported_status, device.battery_level) == ("online", 12), (  # its `online` 4 its newest word
        f"the held status 2 overwrote the new run's status 3: shown {device.reported_status}, {device.battery_level} %"
    )
    assert active("device_degraded") is not None, "the pump's `issue` (3) is still its word on its health"
    assert late() == [("status", 2, False), ("status", 2, False)], "the held status claimed again is recorded late"


def test_held_statuses_claimed_again_are_applied_up_to_the_newest_and_an_online_overtakes_none():
    """The same pump's new run sends statuses 2 (`testing` 77 %) and 3 (`testing` 60 %), both under keys the run before
    gave progress (late, held), then `online` 6: the newest held one is what the screen shows whatever order they
    came in (3 before 2), and the `online` (presence only) overtakes neither."""
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    flow = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 20.0, **ids}
    bridge.commit([sent("status", 1, 0, status="running", uptime=600_000, **ids),
                   sent("progress", 2, 1, **flow), sent("progress", 3, 2, **flow),
                   sent("status", 5, 4, status="running", uptime=604_000, **ids)])  # fmt: skip
    bridge.commit([sent("status", 3, 60, status="testing", batteryLevel=60)])  # its first send of 2 lost: 3 first
    bridge.commit([sent("status", 2, 61, status="testing", batteryLevel=77)])
    assert late() == [("status", 3, False), ("status", 2, False)]
    bridge.commit([sent("status", 6, 62, status="online", uptime=5_000)])
    device = Device.objects.get(device_id="P1")
    assert (device.reported_status, device.battery_level) == ("testing", 60), (device.reported_status,
                                                                              device.battery_level)  # fmt: skip
    assert late()[2:] == [("status", 2, False)], "status 3 claimed again overtakes status 2; nothing else late"


def test_a_late_clearing_newer_than_the_alarm_it_clears_clears_it():
    """Review 47, M4: a pump numbering its ticks sends progress 3 and occlusion 3, progress 4, and its clearing 4
    (first send lost) resent after progress 5: late (seq 4 used by a progress), it cleared nothing, and the occlusion
    the pump cleared stayed a sounding high alarm while it ran. The clearing is newer than the alarm (3 < 4): it
    clears it. One numbered below the alarm's newest raise still clears nothing
    (`test_a_ticks_progress_under_one_seq_does_not_hide_its_late_clearing`)."""
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    flow = {"status": "running", "flowRate": 2.0, "volumeRemainingMl": 20.0, **ids}
    bridge.commit([sent("progress", 3, 0, deliveredVolumeMl=10.0, **flow),
                   sent("error", 3, 0.5, type="occlusion", severity="high", message="Occlusion", **ids),
                   sent("progress", 4, 1, deliveredVolumeMl=10.0, **flow),
                   sent("progress", 5, 2, deliveredVolumeMl=10.1, **flow)])  # fmt: skip
    assert active("occlusion") is not None
    bridge.commit([sent("error", 4, 3, type="occlusion_cleared", **ids)])
    assert active("occlusion") is None, "the pump cleared the occlusion at 4 (raised at 3): it still sounds"
    assert late() == [("error", 4, False)], "the clearing came late: recorded so"
    assert Alarm.objects.get(device__device_id="P1", type="occlusion").state == "cleared"


def test_a_late_clearing_clears_nothing_raised_again_after_it_nor_under_another_boot():
    """The occlusion raised at 3 and counted again at 5: the clearing 4 is older than its newest raise and clears
    nothing; an occlusion of another `bootId`'s message is not cleared by a late clearing either."""
    session = running("P1")
    bridge = Bridge()
    ids = {"infusionId": session.infusion_id}
    occlusion = {"type": "occlusion", "severity": "high", **ids}
    bridge.commit([sent("error", 3, 0, **occlusion), sent("progress", 4, 1, status="running", flowRate=2.0,
                                                           deliveredVolumeMl=6.0, **ids),
                   sent("error", 5, 2, **occlusion)])  # fmt: skip
    bridge.commit([sent("error", 4, 3, type="occlusion_cleared", **ids)])
    assert active("occlusion") is not None, "a clearing numbered 4 cleared the occlusion the pump said again at 5"


def reboot_under_ticks(first_at_s: float) -> InfusionSession:
    """P1 running, its run before numbering its ticks (statuses 1, 3, 5, progress 2, 4), received from `first_at_s`."""
    session = running("P1")
    ids = {"infusionId": session.infusion_id}
    flow = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 20.0, **ids}
    at = first_at_s
    Bridge().commit([sent("status", 1, at, status="running", uptime=600_000, **ids),
                     sent("progress", 2, at + 0.1, **flow),
                     sent("status", 3, at + 0.2, status="running", uptime=602_000, batteryLevel=90, **ids),
                     sent("progress", 4, at + 0.3, **flow),
                     sent("status", 5, at + 0.4, status="running", uptime=604_000, **ids)])  # fmt: skip
    return session


def test_a_held_status_is_overtaken_by_its_run_s_newer_status_received_before_it():
    """The new run's status 3 (`issue` 12 %, under the run before's status 3's key: applied) received before its
    status 2 (`testing` 77 %, first send lost, late, held): the reused key tells status 3 is the new run's, so the
    held status 2 claimed again is late, not applied over it."""
    reboot_under_ticks(0)
    bridge = Bridge()
    bridge.commit([sent("status", 3, 60, status="issue", batteryLevel=12)])
    bridge.commit([sent("status", 2, 61, status="testing", batteryLevel=77)])
    bridge.commit([sent("status", 4, 62, status="online", uptime=5_000)])
    assert Device.objects.get(device_id="P1").battery_level == 12
    assert late() == [("status", 2, False), ("status", 2, False)]


def test_the_run_befores_tail_within_the_uptimes_reach_overtakes_no_held_status():
    """A bridge's backlog received at once: the run before's statuses come within the uptime the telling `online`
    says (20 s). The run before's status 3 (90 %, its key used once) is not the new run's: the held status 2 (77 %),
    the new run's first word, is applied."""
    reboot_under_ticks(58)
    bridge = Bridge()
    bridge.commit([sent("status", 2, 60, status="testing", batteryLevel=77)])
    bridge.commit([sent("status", 3, 61, status="online", uptime=20_000)])
    assert Device.objects.get(device_id="P1").battery_level == 77
    assert late() == [("status", 2, False)]
