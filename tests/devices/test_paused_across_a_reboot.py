"""Review 22, finding 5: a pump that reboots while its ordered infusion is paused, and comes back holding it paused, is
shown paused "WITHOUT an order" and alarmed "The pump reports an infusion the server did not order".

A pump restarted mid-infusion ends its session `interrupted` (high `infusion_interrupted`), and the pump's next
report of that same infusion *running* makes it run again (evidence wins; `infusion_interrupted` clears: "a restart's
resumed run"). The same pump reporting that infusion *paused* (it kept it across the reboot, paused, as the nurse
left it) takes another road: no session is on the pump, the status names an ended infusion, so
`evidence.ended_infusion_status_apply` shows the pump's own infusion: pump state paused, `unordered` on the overview
card ("paused without an order", drug "NO ORDER"), the monitor "Infusing WITHOUT an order … the server did not
order", and a second high alarm `infusing_without_order`: "The pump reports an infusion the server did not order".
The server did order it: it is the nurse's Heparin for this patient, named by its id. A nurse told the pump runs
something nobody ordered may stop it, or look for a rogue order, instead of checking the interrupted one.
"""

import pytest

from devices.models import Alarm, InfusionSession
from devices.states import AlarmState
from realtime.sio.ward_feed import pump_summaries
from tests.factories import make_device, make_ward
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db


def test_an_ordered_infusion_kept_paused_across_a_reboot_is_not_called_unordered(django_capture_on_commit_callbacks):
    make_device("R22_REBOOT_PAUSED", ward=make_ward("r22p"), has_presence=True)
    session = confirmed_order("R22_REBOOT_PAUSED", drug="Heparin")
    named = {"infusionId": session.infusion_id}
    ingest([report("R22_REBOOT_PAUSED", "status", {"status": "running", **named, "bootId": "A", "seq": 1,
                                                   "uptime": 600_000}, 0),
            report("R22_REBOOT_PAUSED", "status", {"status": "paused", **named, "bootId": "A", "seq": 2,
                                                   "uptime": 601_000}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == "paused", "precondition: paused at the pump"
    # the pump reboots and comes back holding the same infusion, paused
    rebooted = {"status": "paused", **named, "bootId": "B", "seq": 1, "uptime": 2_000}
    ingest([report("R22_REBOOT_PAUSED", "status", rebooted, 2)], django_capture_on_commit_callbacks)
    session = InfusionSession.objects.get(pk=session.pk)
    active = dict(Alarm.objects.filter(device__device_id="R22_REBOOT_PAUSED", state=AlarmState.ACTIVE)
                  .values_list("type", "message"))  # fmt: skip
    _, card = pump_summaries(["R22_REBOOT_PAUSED"])["R22_REBOOT_PAUSED"]
    shown = (
        f"session {session.status} ({session.status_reason}); card unordered={card.unordered} "
        f"drug={card.drug!r} pumpState={card.pumpState}; active alarms {active}"
    )
    assert "infusing_without_order" not in active, (
        f"the pump holds infusion {session.infusion_id} (Heparin, ordered by the server) paused after a reboot, yet "
        f"it is alarmed as an infusion the server did not order: {shown}"
    )
    assert not card.unordered, f"the overview card calls the ordered Heparin 'paused without an order': {shown}"


def test_an_infusion_running_before_a_reboot_and_held_paused_after_it_stays_alarmed(django_capture_on_commit_callbacks):
    """The pump ran the order, rebooted and came back holding it paused (a pump that pauses after a power loss): the
    order is shown paused, as its own, and `infusion_interrupted` stays: nobody paused it, and it delivers nothing."""
    make_device("REBOOT_RUN_PAUSED", ward=make_ward("rrp"), has_presence=True)
    session = confirmed_order("REBOOT_RUN_PAUSED", drug="Heparin")
    named = {"infusionId": session.infusion_id}
    running = {"status": "running", **named, "bootId": "A", "seq": 1, "uptime": 600_000}
    ingest([report("REBOOT_RUN_PAUSED", "status", running, 0)], django_capture_on_commit_callbacks)
    rebooted = {"status": "paused", **named, "bootId": "B", "seq": 1, "uptime": 2_000}
    ingest([report("REBOOT_RUN_PAUSED", "status", rebooted, 1)], django_capture_on_commit_callbacks)
    session = InfusionSession.objects.get(pk=session.pk)
    active = set(Alarm.objects.filter(device__device_id="REBOOT_RUN_PAUSED", state=AlarmState.ACTIVE)
                 .values_list("type", flat=True))  # fmt: skip
    assert session.status == "paused", f"the order the pump holds paused is shown {session.status}"
    assert active == {"infusion_interrupted"}, (
        f"an infusion that ran before the reboot and came back paused delivers nothing, and nobody paused it: the "
        f"interruption must stay alarmed, and nothing else (active alarms {sorted(active)})"
    )


def test_paused_progress_naming_the_order_after_a_reboot_is_the_order_paused(django_capture_on_commit_callbacks):
    """The same through the pump's progress: paused progress naming the interrupted order after the reboot shows that
    order paused (its figures its own), never "paused WITHOUT an order" with `infusing_without_order`."""
    make_device("REBOOT_PROGRESS_PAUSED", ward=make_ward("rpp"), has_presence=True)
    session = confirmed_order("REBOOT_PROGRESS_PAUSED", drug="Heparin")
    named = {"infusionId": session.infusion_id}
    ingest([report("REBOOT_PROGRESS_PAUSED", "status", {"status": "paused", **named, "bootId": "A", "seq": 1,
                                                        "uptime": 600_000}, 0)],
           django_capture_on_commit_callbacks)  # fmt: skip
    online = {"status": "online", "bootId": "B", "seq": 1, "uptime": 2_000}
    paused = {"status": "paused", **named, "bootId": "B", "seq": 2, "deliveredVolumeMl": 12.5, "flowRate": 0}
    ingest([report("REBOOT_PROGRESS_PAUSED", "status", online, 1)], django_capture_on_commit_callbacks)
    ingest([report("REBOOT_PROGRESS_PAUSED", "progress", paused, 2)], django_capture_on_commit_callbacks)
    session = InfusionSession.objects.get(pk=session.pk)
    active = set(Alarm.objects.filter(device__device_id="REBOOT_PROGRESS_PAUSED", state=AlarmState.ACTIVE)
                 .values_list("type", flat=True))  # fmt: skip
    _, card = pump_summaries(["REBOOT_PROGRESS_PAUSED"])["REBOOT_PROGRESS_PAUSED"]
    assert session.status == "paused", f"the order the pump reports paused is shown {session.status}"
    assert "infusing_without_order" not in active and not card.unordered, (
        f"the ordered Heparin is called an infusion without an order: alarms {sorted(active)}, card {card.unordered}"
    )
