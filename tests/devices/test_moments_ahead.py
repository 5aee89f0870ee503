"""The clock-ahead look (`deadlines_ahead.moments_ahead`) finds each deadline ahead by its own length, and only then.

Fixed answers, not only the ORM's reading of the same builder (`test_prepared_reads.py`): a review's mutants that
swapped a START's and another command's lifetimes, or dropped the expiry-only part of the command check, passed every
other test. A command ahead only by its `expires_at`, and a ward silence longer than `WARD_SILENCE_MAX_S`, each with
its neighbour just inside the limit.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Command, WardSilence
from devices.services.deadlines_ahead import moments_ahead
from devices.states import AHEAD_TOLERANCE_S, CommandKind
from tests.factories import make_device, make_ward

pytestmark = pytest.mark.django_db

EXPIRY_S, CONFIRMATION_S, SILENCE_MAX_S = 30.0, 30.0, 120.0  # a START's lifetime: the confirmation + 10 s = 40 s


@pytest.fixture(autouse=True)
def lifetimes(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "COMMAND_EXPIRY_S": EXPIRY_S,
                           "CONFIRMATION_TIMEOUT_S": CONFIRMATION_S, "WARD_SILENCE_MAX_S": SILENCE_MAX_S}  # fmt: skip


def command_ahead_by_expiry_alone(kind: str, expires_in_s: float) -> bool:
    now = timezone.now()
    pump = make_device("PUMP_A", last_seen_at=now)
    Command.objects.create(device=pump, kind=kind, created_at=now - timedelta(seconds=5),
                           expires_at=now + timedelta(seconds=expires_in_s))  # fmt: skip
    return moments_ahead(now=now)


@pytest.mark.parametrize(
    ("kind", "expires_in_s", "ahead"),
    [
        (CommandKind.STOP_INFUSION, AHEAD_TOLERANCE_S + EXPIRY_S - 1, False),
        (CommandKind.STOP_INFUSION, AHEAD_TOLERANCE_S + EXPIRY_S + 2, True),
        (CommandKind.PAUSE_INFUSION, AHEAD_TOLERANCE_S + EXPIRY_S + 2, True),
        (CommandKind.START_INFUSION, AHEAD_TOLERANCE_S + EXPIRY_S + 2, False),  # within a START's 40 s
        (CommandKind.START_INFUSION, AHEAD_TOLERANCE_S + CONFIRMATION_S + 10 + 2, True),
    ],
)
def test_a_command_ahead_by_its_deadline_alone(kind, expires_in_s, ahead):
    assert command_ahead_by_expiry_alone(kind, expires_in_s) is ahead


@pytest.mark.parametrize(("longer_by_s", "ahead"), [(-20, False), (5, True)])
def test_an_open_silence_longer_than_the_longest(longer_by_s, ahead):
    now = timezone.now()
    started = now - timedelta(seconds=10)
    WardSilence.objects.create(ward=make_ward(), started_at=started,
                               until=started + timedelta(seconds=SILENCE_MAX_S + longer_by_s))  # fmt: skip
    assert moments_ahead(now=now) is ahead


def test_nothing_ahead_on_a_clock_never_ahead():
    now = timezone.now()
    make_device("PUMP_A", last_seen_at=now)
    assert moments_ahead(now=now) is False
