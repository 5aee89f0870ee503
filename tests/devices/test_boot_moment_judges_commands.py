"""When a pump booted, as its restart tells it (`restarts.pump_booted_at`), and how a person's command under way is
judged by it (review 25, findings 5 and 6): published before the boot, lost with the run before; after it, the new
run's, left under way. The boot is the server's receive time less the uptime the pump counted, else the moment the
restart was told (a bound at or after the real boot): a message telling no uptime makes every command published
before it lost, the conservative side (one wrongly judged lost sends the nurse to the pump; one wrongly judged the
new run's could be credited with what the pump does on its own)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, Command, Device, InfusionSession
from devices.services.changes import device_lock
from devices.services.command_deadlines import commands_end_overdue
from devices.services.commands import LOST_IN_RESTART, command_advance
from devices.services.publication import command_published
from devices.services.requests import infusion_request
from devices.states import CommandKind, CommandState, SessionStatus
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db


def stop_sent_at(device_id: str, session: InfusionSession, published) -> Command:
    """A nurse's Stop, handed to the broker at `published` and acknowledged (`sent`)."""
    stop = infusion_request(device_id=device_id, kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id,
                            user=make_user(f"nurse-{device_id.lower()}"), reason="wrong patient",
                            idempotency_key=f"k-{device_id}")  # fmt: skip
    with transaction.atomic():
        device_lock(device_id=device_id)
        command_published(command=Command.objects.get(pk=stop.pk), now=published)
    command_advance(device_id=device_id, command_pk=stop.pk, to=CommandState.SENT, now=published)
    return Command.objects.get(pk=stop.pk)


def running_then_quiet(device_id: str, capture):
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, drug="Heparin")
    start = timezone.now()
    ingest([report(device_id, "status", {"status": "running", "infusionId": session.infusion_id, "bootId": "A",
                                         "seq": 1, "uptime": 600_000}, at=start)], capture)  # fmt: skip
    return session, start


def test_the_boot_is_the_receive_time_less_the_uptime_told(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session, start = running_then_quiet("BOOT_TOLD", capture)
    stop = stop_sent_at("BOOT_TOLD", session, start + timedelta(seconds=5))  # before the boot at 6.5 s
    ingest([report("BOOT_TOLD", "status", {"status": "running", "infusionId": session.infusion_id, "bootId": "B",
                                           "seq": 1, "uptime": 3_500}, at=start + timedelta(seconds=10))],
           capture)  # fmt: skip
    assert Device.objects.get(device_id="BOOT_TOLD").booted_at == start + timedelta(seconds=6.5)
    stop = Command.objects.get(pk=stop.pk)
    assert (stop.state, stop.error) == (CommandState.FAILED, LOST_IN_RESTART), (
        f"a Stop published 1.5 s before the pump booted again went to the run before: lost, yet {stop.state}"
    )


def test_a_restart_telling_no_uptime_judges_by_when_it_was_told(django_capture_on_commit_callbacks):
    """A progress report under a new `bootId` tells the restart but no uptime: the boot is taken as the moment it was
    told, so a Stop published 2 s before is lost with the run before (failed), never left to the new run."""
    capture = django_capture_on_commit_callbacks
    session, start = running_then_quiet("BOOT_UNTOLD", capture)
    stop = stop_sent_at("BOOT_UNTOLD", session, start + timedelta(seconds=8))
    told = start + timedelta(seconds=10)
    ingest([report("BOOT_UNTOLD", "progress", {"status": "running", "infusionId": session.infusion_id, "bootId": "B",
                                               "seq": 1, "flowRate": 2.0, "deliveredVolumeMl": 1.0}, at=told)],
           capture)  # fmt: skip
    assert Device.objects.get(device_id="BOOT_UNTOLD").booted_at == told
    stop = Command.objects.get(pk=stop.pk)
    assert (stop.state, stop.error) == (CommandState.FAILED, LOST_IN_RESTART), f"{stop.state} ({stop.error})"


def test_a_stop_sent_to_the_new_run_not_carried_out_fails_at_its_deadline(django_capture_on_commit_callbacks):
    """The Stop published after the boot stays under way through the interruption (never "not needed"); the pump runs
    on and does not stop: at its deadline it fails with `command_not_carried_out`, as any Stop."""
    capture = django_capture_on_commit_callbacks
    session, start = running_then_quiet("BOOT_NEW_RUN", capture)
    stop = stop_sent_at("BOOT_NEW_RUN", session, start + timedelta(seconds=8))
    ingest([report("BOOT_NEW_RUN", "status", {"status": "running", "infusionId": session.infusion_id, "bootId": "B",
                                              "seq": 1, "uptime": 3_500}, at=start + timedelta(seconds=10))],
           capture)  # fmt: skip
    stop = Command.objects.get(pk=stop.pk)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, "precondition: runs again"
    assert stop.state == CommandState.SENT, f"the new run's Stop stays under way, yet {stop.state} ({stop.error})"
    commands_end_overdue(now=stop.expires_at + timedelta(seconds=1))
    stop = Command.objects.get(pk=stop.pk)
    assert stop.state == CommandState.FAILED, stop.state
    assert Alarm.objects.filter(device__device_id="BOOT_NEW_RUN", type="command_not_carried_out").exists()


def test_a_pause_sent_to_the_new_run_of_a_pump_back_idle_raises_no_alarm_of_its_own(django_capture_on_commit_callbacks):
    """The pump comes back idle: the Pause published after its boot, left under way, ends at its deadline `failed`
    without `command_not_carried_out` (the infusion it was for is interrupted, not running): the restart's
    `infusion_interrupted` sends the nurse to the pump, as for a command the restart lost."""
    capture = django_capture_on_commit_callbacks
    session, start = running_then_quiet("BOOT_IDLE", capture)
    pause = infusion_request(
        device_id="BOOT_IDLE",
        kind=CommandKind.PAUSE_INFUSION,
        infusion_id=session.infusion_id,
        user=make_user("nurse-boot-idle"),
        reason="line check",
        idempotency_key="k-boot-idle",
    )
    published = start + timedelta(seconds=8)
    with transaction.atomic():
        device_lock(device_id="BOOT_IDLE")
        command_published(command=Command.objects.get(pk=pause.pk), now=published)
    command_advance(device_id="BOOT_IDLE", command_pk=pause.pk, to=CommandState.SENT, now=published)
    ingest([report("BOOT_IDLE", "status", {"status": "idle", "bootId": "B", "seq": 1, "uptime": 3_500},
                   at=start + timedelta(seconds=10))], capture)  # fmt: skip
    pause = Command.objects.get(pk=pause.pk)
    assert pause.state == CommandState.SENT, f"the new run's Pause stays under way, yet {pause.state} ({pause.error})"
    commands_end_overdue(now=pause.expires_at + timedelta(seconds=1))
    assert Command.objects.get(pk=pause.pk).state == CommandState.FAILED
    alarms = set(Alarm.objects.filter(device__device_id="BOOT_IDLE", state="active").values_list("type", flat=True))
    assert alarms == {"infusion_interrupted"}, f"one alarm sends the nurse to the pump: {sorted(alarms)}"


def test_a_stop_sent_to_the_new_run_of_a_pump_back_idle_is_done(django_capture_on_commit_callbacks):
    """The pump comes back idle: what the Stop published after its boot asks holds (`done`), the infusion stays
    interrupted with its alarm (nothing says the pump stopped it remotely)."""
    capture = django_capture_on_commit_callbacks
    session, start = running_then_quiet("BOOT_IDLE_STOP", capture)
    stop = stop_sent_at("BOOT_IDLE_STOP", session, start + timedelta(seconds=8))
    ingest([report("BOOT_IDLE_STOP", "status", {"status": "idle", "bootId": "B", "seq": 1, "uptime": 3_500},
                   at=start + timedelta(seconds=10))], capture)  # fmt: skip
    assert Command.objects.get(pk=stop.pk).state == CommandState.DONE
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


@pytest.mark.parametrize("uptime_ms", [9_007_199_254_740_992, 10**12 * 366])
def test_a_restart_telling_an_unbelievable_uptime_is_applied_with_the_boot_when_it_was_told(
    django_capture_on_commit_callbacks, uptime_ms
):
    """An uptime of 2**53 ms (a broken or hostile pump; PostgreSQL's fuzz run found it, ci4) overflowed the boot
    moment's subtraction: the report telling the restart was dead-lettered `internal_error` and the restart never
    applied (the infusion shown running). Beyond ten years an uptime tells no boot: the moment it was told is taken."""
    capture = django_capture_on_commit_callbacks
    session, start = running_then_quiet("BOOT_HUGE", capture)
    told = start + timedelta(seconds=10)
    outcomes = ingest([report("BOOT_HUGE", "status", {"status": "running", "infusionId": session.infusion_id,
                                                      "bootId": "B", "seq": 1, "uptime": uptime_ms}, at=told)],
                      capture)  # fmt: skip
    assert Device.objects.get(device_id="BOOT_HUGE").booted_at == told, f"outcomes {dict(outcomes)}"
    assert Alarm.objects.filter(device__device_id="BOOT_HUGE", type="infusion_interrupted").exists(), (
        f"the restart told with an uptime of {uptime_ms} ms was not applied: outcomes {dict(outcomes)}"
    )
