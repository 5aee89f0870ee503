"""Fixtures of the domain tests."""

import pytest

from realtime import dispatch


@pytest.fixture
def emitted():
    """The changes this process hands to its realtime sink, in order."""
    changes = []
    dispatch.install_sink(changes.append)
    yield changes
    dispatch.install_sink(None)
