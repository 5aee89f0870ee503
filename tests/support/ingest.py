"""Pump reports through the bridge's real batch ingest, in the test's own transaction: the unit tests of what a
message does to the record (the integration tests send the same through Mosquitto and a bridge process)."""

import json
from collections import Counter
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from devices.models import Command, InfusionSession
from devices.services.changes import device_lock
from devices.services.commands import command_advance
from devices.services.confirmations import infusion_confirm
from devices.services.publication import command_published
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState
from realtime.bridge.batch import BatchIngest
from realtime.bridge.budgets import PumpBudgets
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device, make_order


def report(device_id: str, kind: str, body: dict, at_s: float = 0.0, *, retain: bool = False,
           topic: str | None = None, at: datetime | None = None) -> InboundMessage:  # fmt: skip
    """A pump's message on `devices/{id}/{kind}` (or `topic`), received `at_s` seconds from now (or `at`)."""
    return InboundMessage(topic=topic or f"devices/{device_id}/{kind}", payload=json.dumps(body).encode(),
                          received_at=at or timezone.now() + timedelta(seconds=at_s), retain=retain)  # fmt: skip


def ingest(batch: list[InboundMessage], capture, budgets: PumpBudgets | None = None) -> Counter:
    """Apply `batch` as the bridge does (no flood guard; `budgets` if given); `capture` is pytest-django's
    `django_capture_on_commit_callbacks`, so the commit's listeners run as they would."""
    with capture(execute=True), transaction.atomic():
        return BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1), budgets).run(batch)


def send(capture, device_id: str, kind: str, body: dict, at_s: float = 0.0) -> Counter:
    """One pump message on `devices/{id}/{kind}`, received `at_s` seconds from now, applied as the bridge does."""
    return ingest([report(device_id, kind, body, at_s)], capture)


def send_bytes(capture, device_id: str, kind: str, payload: bytes, at_s: float = 0.0) -> Counter:
    """`payload` as sent (it may not decode) on `devices/{id}/{kind}`, received `at_s` seconds from now, applied as
    the bridge does."""
    message = report(device_id, kind, {}, at_s)
    message.payload = payload
    return ingest([message], capture)


def start_sent(session: InfusionSession, *, ago_s: float = 1.0) -> Command:
    """The order's START as the outbox leaves it once the broker took it (`sent`, `published_at`), `ago_s` seconds
    ago: the pump can have it, so its answers naming no infusion are about it (`devices/services/bare_answers.py`)."""
    at = timezone.now() - timedelta(seconds=ago_s)
    Command.objects.filter(session=session, kind=CommandKind.START_INFUSION).update(
        state=CommandState.SENT, published_at=at, sent_at=at
    )
    return Command.objects.get(session=session, kind=CommandKind.START_INFUSION)


def running_under_boot_a(device_id: str, capture, *, at: datetime | None = None) -> InfusionSession:
    """A pump with presence whose confirmed Heparin order it reports running under bootId A, up 10 minutes (`at`, else
    now): the run a reboot test then interrupts."""
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, drug="Heparin")
    body = {"status": "running", "infusionId": session.infusion_id, "bootId": "A", "seq": 1, "uptime": 600_000}
    ingest([report(device_id, "status", body, at=at)], capture)
    return session


def confirmed_order(device_id: str, *, parameters: dict | None = None, **order) -> InfusionSession:
    """An order started on the pump and confirmed by it (`parameters` read back: None, unverified), as stored."""
    session = infusion_start(device_id=device_id, order=make_order(**order))
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id=device_id), infusion_id=session.infusion_id, confirmed=True,
                         parameters=parameters, confirmation={"confirmed": True})  # fmt: skip
    return InfusionSession.objects.get(pk=session.pk)


def started_order(device_id: str, **order) -> InfusionSession:
    """An order the pump confirmed, its START done: the commands a test then asks for are the only ones under way."""
    session = confirmed_order(device_id, **order)
    Command.objects.filter(session=session, kind=CommandKind.START_INFUSION).update(state=CommandState.DONE)
    return session


def failed_unacknowledged(device_id: str, command: Command, *, now: datetime | None = None) -> Command:
    """What the outbox does with a publish the broker took but did not acknowledge in time: published, then failed."""
    now = now or timezone.now()
    with transaction.atomic():
        device_lock(device_id=device_id)
        command_published(command=Command.objects.get(pk=command.pk), now=now)
    command_advance(device_id=device_id, command_pk=command.pk, to=CommandState.FAILED, now=now,
                    error="the broker did not acknowledge the command in time")  # fmt: skip
    return Command.objects.get(pk=command.pk)
