"""The one way changes leave a service: after the transaction commits, into the process's sink.

Each process installs its sink once at start-up: Daphne's fans out to Socket.IO rooms and Channels
groups; the bridge's collects a batch and forwards it over its internal connection. A process with no
sink (a management command, a unit test) only logs at debug level: the database remains the truth.
"""

import logging
from collections.abc import Callable

from django.db import transaction

from realtime.events import DeviceChange

logger = logging.getLogger(__name__)

ChangeSink = Callable[[DeviceChange], None]


def _no_sink(change: DeviceChange) -> None:
    logger.debug("no realtime sink in this process", extra={"device_id": change.device_id})


class _Dispatcher:
    """Holds the process's sink; replaced only by `install_sink`."""

    sink: ChangeSink = staticmethod(_no_sink)


def install_sink(sink: ChangeSink | None) -> None:
    """Route this process's committed changes to `sink` (None restores the logging default)."""
    _Dispatcher.sink = staticmethod(sink or _no_sink)


def emit_on_commit(change: DeviceChange) -> None:
    """Hand `change` to the sink once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _deliver(change))


def _deliver(change: DeviceChange) -> None:
    try:
        _Dispatcher.sink(change)
    except Exception:  # a failing sink must never undo or block a committed change
        logger.exception("realtime sink failed", extra={"device_id": change.device_id})
