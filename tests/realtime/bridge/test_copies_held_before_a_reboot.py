"""The other side of review 25, finding 3: an alarm skipped as a copy is held so that the status telling a reboot can
claim it again, but what is held forges nothing and stays bounded. A copy received before the boot the status tells
(the run before's own retransmission) is not raised; without a reboot a held copy is never applied; a redelivered
(DUP) copy is never held; a pump repeating one copy holds a few at most, and all pumps together a bounded number."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, DeviceEvent, HeldCopy
from devices.services import copies
from tests.factories import make_device
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

BOOT = {"bootId": "b00t"}  # an Arduino random() never seeded: the same on every boot
OCCLUSION = {"type": "occlusion", "severity": "high", "message": "Downstream occlusion"}


def _pump(device_id: str):
    """A registered pump with presence and a function making its messages, `seconds` after now."""
    make_device(device_id, has_presence=True)
    start = timezone.now()

    def message(seconds: float, kind: str, body: dict, *, redelivered: bool = False):
        inbound = report(device_id, kind, {**body, **BOOT}, at=start + timedelta(seconds=seconds))
        inbound.redelivered = redelivered
        return inbound

    return message


def _run_before(message, capture) -> None:
    """The run before: online, an occlusion (seq 2), cleared (seq 3), idle ten minutes later."""
    for seconds, kind, body in [(0, "status", {"status": "online", "uptime": 5_000, "seq": 1}),
                                (1, "error", {**OCCLUSION, "seq": 2}),
                                (2, "error", {"type": "occlusion_cleared", "seq": 3}),
                                (600, "status", {"status": "idle", "uptime": 605_000, "seq": 4})]:  # fmt: skip
        ingest([message(seconds, kind, body)], capture)


def test_a_copy_received_before_the_boot_the_status_tells_is_not_raised(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    message = _pump("HELD_BEFORE_BOOT")
    _run_before(message, capture)
    # the run before's own retransmission of its occlusion (a late PUBACK), forwarded without DUP: a copy
    ingest([message(610, "error", {**OCCLUSION, "seq": 2})], capture)
    # it rebooted at 620 s (its status at 640 s says 20 s of uptime)
    ingest([message(640, "status", {"status": "online", "uptime": 20_000, "seq": 1})], capture)
    assert DeviceEvent.objects.filter(device__device_id="HELD_BEFORE_BOOT", kind="pump.restarted").exists(), (
        "precondition: the reboot is told by the uptime"
    )
    active = list(Alarm.objects.filter(device__device_id="HELD_BEFORE_BOOT", state="active")
                  .values_list("type", flat=True))  # fmt: skip
    assert "occlusion" not in active, (
        f"the copy of the cleared occlusion came 10 s BEFORE the boot the status tells: the run before's, yet it was "
        f"raised again after the reboot (active: {active})"
    )
    assert not HeldCopy.objects.filter(device__device_id="HELD_BEFORE_BOOT").exists(), "let go at the reboot"


def test_a_copy_before_a_status_telling_no_reboot_is_never_applied(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    message = _pump("HELD_NO_REBOOT")
    ingest([message(0, "status", {"status": "online", "uptime": 5_000, "seq": 1})], capture)
    ingest([message(1, "error", {**OCCLUSION, "seq": 2})], capture)
    outcome = ingest([message(10, "error", {**OCCLUSION, "seq": 2}),
                      message(10.02, "status", {"status": "idle", "uptime": 15_000, "seq": 3})], capture)  # fmt: skip
    occlusion = Alarm.objects.get(device__device_id="HELD_NO_REBOOT", type="occlusion")
    assert outcome["duplicate"] == 1 and occlusion.count == 1, (
        f"the pump did not reboot: its occlusion seq 2 sent again before a status is a copy, yet outcome "
        f"{dict(outcome)}, occlusion counted {occlusion.count}"
    )


def test_held_copies_are_bounded_per_pump_and_in_all(django_capture_on_commit_callbacks, monkeypatch):
    capture = django_capture_on_commit_callbacks
    message = _pump("HELD_HOSTILE")
    ingest([message(0, "error", {**OCCLUSION, "seq": 2})], capture)
    ingest([message(1 + n / 100, "error", {**OCCLUSION, "seq": 2}) for n in range(40)], capture)
    ingest([message(2, "error", {**OCCLUSION, "seq": 2}, redelivered=True)], capture)
    held = HeldCopy.objects.filter(device__device_id="HELD_HOSTILE").count()
    assert held == copies.HELD_COPIES_PER_PUMP, (
        f"a pump repeated one alarm 40 times (and once redelivered): {held} held, not the newest "
        f"{copies.HELD_COPIES_PER_PUMP}"
    )

    monkeypatch.setattr(copies, "HELD_COPIES_IN_ALL", 5)
    for pump in ("HELD_ALL_A", "HELD_ALL_B", "HELD_ALL_C"):
        other = _pump(pump)
        ingest([other(0, "error", {**OCCLUSION, "seq": 2})], capture)
        ingest([other(1 + n / 100, "error", {**OCCLUSION, "seq": 2}) for n in range(4)], capture)
    assert HeldCopy.objects.count() <= 5, f"{HeldCopy.objects.count()} copies held in all, over the bound of 5"


def test_a_redelivered_copy_is_never_held(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    message = _pump("HELD_DUP")
    ingest([message(0, "error", {**OCCLUSION, "seq": 2})], capture)
    ingest([message(5, "error", {**OCCLUSION, "seq": 2}, redelivered=True)], capture)
    ingest([message(6, "error", {"type": "occlusion_cleared", "seq": 3})], capture)
    ingest([message(7, "error", {"type": "occlusion_cleared", "seq": 3})], capture)
    assert not HeldCopy.objects.filter(device__device_id="HELD_DUP").exists(), (
        "a redelivered (DUP) copy is a copy by the protocol, and a clearing is never claimed again late: none is held"
    )
