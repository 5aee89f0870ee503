"""A command the outbox handed to the broker counts as published before its PUBACK is recorded (`published_at`).

Review 5: only `sent`/`delivered` commands counted as published, and every `queued` one a pump's report made moot
was superseded. But a command the link took stays `queued` until `settle_acks` records its PUBACK, and the pump's
reply can be applied first (paho re-sends after a reconnect; several bridge processes). The nurse's STOP was then
"not needed: the pump reported idle before it was sent", the infusion `interrupted` with a HIGH alarm instead of
"stopped remotely by nurse", and the later PUBACK could not move the superseded command: a forged record.
"""

import json
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.housekeeping_selectors import sessions_unconfirmed_since
from devices.models import Command, InfusionSession
from devices.services.command_deadlines import commands_end_overdue
from devices.services.publication import command_published
from devices.services.requests import infusion_request, infusion_time_out
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState, SessionStatus
from realtime.bridge.outbox import CommandOutbox
from tests.factories import make_device, make_order, make_user
from tests.support.ingest import confirmed_order, ingest, report
from tests.support.links import RecordingLink

pytestmark = pytest.mark.django_db

PROGRESS = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 10.0, "volumeRemainingMl": 20.0}


class LinkWithoutPuback:
    """The broker link: takes the publish (a message id), the PUBACK not yet received."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.connected.set()
        self.published: list[str] = []

    def publish(self, topic: str, body: bytes, *, expiry_s: int) -> int:
        self.published.append(json.loads(body)["command"])
        return len(self.published)

    def forget(self, mid: int) -> None:
        pass


def test_a_published_stop_the_pump_obeyed_is_not_called_unsent(django_capture_on_commit_callbacks):
    make_device("INFLIGHT_1", last_seen_at=timezone.now())
    session = confirmed_order("INFLIGHT_1")
    ingest([report("INFLIGHT_1", "progress", {**PROGRESS, "infusionId": session.infusion_id})],
           django_capture_on_commit_callbacks)  # fmt: skip
    stop = infusion_request(device_id="INFLIGHT_1", kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id,
                            user=make_user("nurse"))  # fmt: skip
    link = LinkWithoutPuback()
    outbox = CommandOutbox(link)
    outbox.tick(timezone.now())
    assert "STOP_INFUSION" in link.published, "the outbox handed the STOP to the broker"
    assert Command.objects.get(pk=stop.pk).published_at is not None, "the publication is recorded before its PUBACK"
    stop_mid = link.published.index("STOP_INFUSION") + 1
    # The broker delivered it; the pump stopped and says so before the bridge recorded the PUBACK.
    ingest([report("INFLIGHT_1", "status", {"status": "idle"}, 1)], django_capture_on_commit_callbacks)
    outbox.acked.put(stop_mid)  # the PUBACK, just after
    outbox.settle_acks(timezone.now())
    session.refresh_from_db()
    stop = Command.objects.get(pk=stop.pk)
    assert stop.state == CommandState.DONE, f"the STOP the pump obeyed is recorded: {stop.state}, {stop.error!r}"
    assert session.status == SessionStatus.STOPPED, (
        f"the pump stopped on the nurse's STOP, yet the record says {session.status}: {session.status_reason}"
    )
    assert session.status_reason == "stopped remotely by nurse", session.status_reason
    assert not InfusionSession.objects.filter(pk=session.pk, status=SessionStatus.INTERRUPTED).exists()


def test_a_published_command_unacknowledged_past_its_deadline_fails_never_expires():
    make_device("INFLIGHT_2", last_seen_at=timezone.now())
    session = confirmed_order("INFLIGHT_2")
    pause = infusion_request(device_id="INFLIGHT_2", kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                             user=make_user("nurse"))  # fmt: skip
    CommandOutbox(LinkWithoutPuback()).tick(timezone.now())
    commands_end_overdue(now=pause.expires_at + timedelta(seconds=1))
    pause = Command.objects.get(pk=pause.pk)
    assert pause.state == CommandState.FAILED, f"a PAUSE handed to the broker is not 'never sent': {pause.error!r}"


def test_a_start_whose_publication_record_failed_keeps_its_deadline_from_the_publication(settings, monkeypatch):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "CONFIRMATION_TIMEOUT_S": 30.0}
    make_device("INFLIGHT_3")
    session = infusion_start(device_id="INFLIGHT_3", order=make_order())
    start = Command.objects.get(session=session, kind=CommandKind.START_INFUSION)
    published_at = start.created_at + timedelta(seconds=20)
    failures = iter([RuntimeError("the record failed after the publish")])

    def failing_once(**kwargs) -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        command_published(**kwargs)

    monkeypatch.setattr("realtime.bridge.outbox.command_published", failing_once)
    outbox = CommandOutbox(RecordingLink())
    outbox.tick(published_at)
    assert len(outbox.link.published) == 1, "the START went out"
    assert Command.objects.get(pk=start.pk).published_at is None, "the record failed (the test's premise)"
    outbox.tick(published_at + timedelta(seconds=1))  # the record is tried again at the next tick, PUBACK or not
    start = Command.objects.get(pk=start.pk)
    told = outbox.link.published[0]["expiresAt"]
    assert start.published_at == published_at, "the publication was recorded once the record could be made"
    assert start.expires_at == published_at + timedelta(seconds=40), (
        f"the pump was told {told}, the record keeps the order's deadline {start.expires_at}"
    )
    assert len(outbox.link.published) == 1, "never published twice"


def test_a_start_published_late_waits_from_its_publication_before_its_puback(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "CONFIRMATION_TIMEOUT_S": 30.0}
    make_device("INFLIGHT_4")
    session = infusion_start(device_id="INFLIGHT_4", order=make_order())
    start = Command.objects.get(session=session, kind=CommandKind.START_INFUSION)
    published_at = start.created_at + timedelta(seconds=25)  # queued through a broker outage
    CommandOutbox(LinkWithoutPuback()).tick(published_at)
    overdue = sessions_unconfirmed_since(cutoff=published_at + timedelta(seconds=10) - timedelta(seconds=30), limit=10)
    assert overdue == [], (
        "the pump got the START 10 s ago with the whole confirmation time, yet its order is judged from its creation: "
        f"{overdue}"
    )


def test_a_start_the_pump_received_before_its_puback_is_delivered(django_capture_on_commit_callbacks):
    make_device("INFLIGHT_5", last_seen_at=timezone.now())
    session = infusion_start(device_id="INFLIGHT_5", order=make_order())
    start = Command.objects.get(session=session, kind=CommandKind.START_INFUSION)
    link = LinkWithoutPuback()
    outbox = CommandOutbox(link)
    outbox.tick(timezone.now())
    ingest([report("INFLIGHT_5", "status", {"status": "received_start_command"}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    outbox.acked.put(link.published.index("START_INFUSION") + 1)  # the PUBACK, just after
    outbox.settle_acks(timezone.now())
    start = Command.objects.get(pk=start.pk)
    assert start.state == CommandState.DELIVERED, f"the pump showed it received the START; recorded {start.state}"


def test_a_time_out_stop_handed_to_the_broker_is_never_called_withdrawn_unsent(django_capture_on_commit_callbacks):
    make_device("INFLIGHT_6", last_seen_at=timezone.now())
    session = infusion_start(device_id="INFLIGHT_6", order=make_order())
    infusion_time_out(infusion_id=session.infusion_id)
    link = LinkWithoutPuback()
    CommandOutbox(link).tick(timezone.now())
    assert "STOP_INFUSION" in link.published, "the time-out's STOP went to the broker (the test's premise)"
    ingest([report("INFLIGHT_6", "infusion", {"confirmed": True, "infusionId": session.infusion_id}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    stop = Command.objects.get(session=session, kind=CommandKind.STOP_INFUSION)
    assert "withdrawn unsent" not in stop.error, f"the STOP was handed to the broker: {stop.state} ({stop.error!r})"
