"""Fixtures of the domain tests."""

import pytest
from django.utils import timezone

from tests.factories import make_device, make_user, make_ward
from tests.support.changes import RecordedChanges


@pytest.fixture
def emitted() -> RecordedChanges:
    """The changes this test recorded in the change log (what the publisher would send), in order."""
    return RecordedChanges()


@pytest.fixture
def ward():
    """The ward of the API tests (a test file's own `ward`, `device` or `nurse` fixture takes their place)."""
    return make_ward("icu")


@pytest.fixture
def device(ward):
    """PUMP_0001 in the ward, heard just now, its limits 10 mL/min and 500 mL."""
    return make_device("PUMP_0001", ward=ward, last_seen_at=timezone.now(), max_rate_ml_min=10, max_volume_ml=500)


@pytest.fixture
def nurse(ward):
    """A nurse of the ward, with command rights."""
    return make_user("nurse", ward=ward)
