"""A person's command is judged by when she pressed (`asked_at`, review 46): the rules at the service, by its clock.

The scenarios through the broker, the bridge and Daphne are in tests/clinical/test_command_held_up.py and
tests/browser/test_command_held_in_the_network.py; these pin the edges by the service's own `now`.
"""

from datetime import timedelta

import pytest

from devices.exceptions import PumpStreamError
from devices.models import Command, DeviceEvent
from devices.payloads import command_body
from devices.services.asked_at import ASKED_AT_MOST_S
from devices.services.requests import infusion_request
from devices.states import CommandKind
from devices.views.event_log import event_text
from tests.factories import make_device, make_user
from tests.support.ingest import started_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def running():
    make_device("ASKED_1")
    session = started_order("ASKED_1")
    return session, make_user("asked-nurse")


def pause(session, user, *, asked_at, now, key="k1"):
    return infusion_request(device_id="ASKED_1", kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                            user=user, idempotency_key=key, asked_at=asked_at, now=now)  # fmt: skip


def test_a_press_within_the_limit_is_queued_with_its_press_time(running):
    session, nurse = running
    pressed = session.status_changed_at + timedelta(seconds=30)
    command = pause(session, nurse, asked_at=pressed, now=pressed + timedelta(seconds=ASKED_AT_MOST_S))
    assert command.asked_at == pressed
    assert command_body(command).command.askedAt == pressed, "the screens name the press, not the arrival"
    press = DeviceEvent.objects.get(kind="user.pause_infusion")
    assert event_text(press).startswith("asked-nurse asked the pump to pause, pressed at "), event_text(press)


def test_a_press_dated_after_the_servers_clock_is_refused(running):
    """The page's estimate of the server's clock is off (its wall clock stepped forward, not yet corrected by a poll):
    when she pressed cannot be told, so neither its age nor what changed since."""
    session, nurse = running
    now = session.status_changed_at + timedelta(seconds=30)
    with pytest.raises(PumpStreamError) as refused:
        pause(session, nurse, asked_at=now + timedelta(seconds=ASKED_AT_MOST_S + 1), now=now)
    assert refused.value.code == "command_late" and "after the server's clock" in refused.value.message
    assert not Command.objects.filter(kind=CommandKind.PAUSE_INFUSION).exists()


def test_a_late_repeat_of_a_request_already_answered_is_answered_again(running):
    """The same request again (its reply lost, sent again later): it was judged on its first arrival."""
    session, nurse = running
    pressed = session.status_changed_at + timedelta(seconds=30)
    first = pause(session, nurse, asked_at=pressed, now=pressed)
    again = pause(session, nurse, asked_at=pressed, now=pressed + timedelta(seconds=60))
    assert again.pk == first.pk
    assert not DeviceEvent.objects.filter(kind="user.command_refused").exists()


def test_the_log_tells_a_refused_press_and_one_that_joined(running):
    session, nurse = running
    pressed = session.status_changed_at + timedelta(seconds=30)
    with pytest.raises(PumpStreamError):
        pause(session, nurse, asked_at=pressed, now=pressed + timedelta(seconds=20))
    refused = event_text(DeviceEvent.objects.get(kind="user.command_refused"))
    assert refused.startswith("asked-nurse asked the pump to pause, pressed at ") and (
        "reached the server 20 s later: refused (too late), nothing sent to the pump" in refused
    ), refused
    first = pause(session, make_user("first-nurse"), asked_at=pressed, now=pressed, key="first")
    joined = pause(session, nurse, asked_at=pressed, now=pressed + timedelta(seconds=1), key="second")
    assert joined.pk == first.pk
    press = DeviceEvent.objects.get(kind="user.pause_infusion", user=nurse)
    assert event_text(press).endswith(": joined the pause already under way asked by first-nurse (not sent again)")
