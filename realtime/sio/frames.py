"""A Socket.IO server whose undecodable frames are a client's fault, never a traceback.

python-socketio decodes each frame (JSON) before any handler runs; a frame that fails (an integer of
more than 4,300 digits, nesting deeper than the recursion limit, a malformed packet) raised out of
`_handle_eio_message` and python-engineio logged a traceback per frame (500 frames: 1.7 MB in 2 s). Here
the failure goes to `on_undecodable(eio_sid, reason)` instead: the client namespace counts it as a strike
toward the malformed-request limit (`limits.py`); the internal road logs and drops it.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from engineio import async_socket

from realtime.sio.engine_socket import PromptAsyncSocket

logger = logging.getLogger(__name__)

# What decoding a hostile frame raises: json's ValueError (digit limit, bad JSON), RecursionError (nesting),
# python-socketio's ValueError/TypeError/KeyError/IndexError on malformed packets and attachments.
UNDECODABLE = (ValueError, RecursionError, TypeError, KeyError, IndexError)

OnUndecodable = Callable[[str, str], Awaitable[None]]


async def drop_undecodable(eio_sid: str, reason: str) -> None:
    """The default: log (no traceback) and drop."""
    logger.warning("undecodable Socket.IO frame dropped", extra={"reason": reason})


class GuardedAsyncServer(socketio.AsyncServer):
    """`socketio.AsyncServer` that hands undecodable frames to `on_undecodable` instead of raising."""

    def __init__(self, *args: Any, on_undecodable: OnUndecodable = drop_undecodable, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_undecodable = on_undecodable

    async def _handle_eio_connect(self, eio_sid: str, environ: dict) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if type(socket) is async_socket.AsyncSocket:  # before its transport runs: frames read without a task each
            socket.__class__ = PromptAsyncSocket
        await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except UNDECODABLE as exc:
            self._binary_packet.pop(eio_sid, None)
            await self.on_undecodable(eio_sid, f"{type(exc).__name__}: {str(exc)[:80]}")
