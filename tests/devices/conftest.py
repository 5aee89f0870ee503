"""Fixtures of the domain tests."""

import pytest

from tests.support.changes import RecordedChanges


@pytest.fixture
def emitted() -> RecordedChanges:
    """The changes this test recorded in the change log (what the publisher would send), in order."""
    return RecordedChanges()
