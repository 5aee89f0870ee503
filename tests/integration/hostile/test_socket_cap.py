"""One user cannot hold more than `SOCKETS_PER_PRINCIPAL` (20) sockets open on a Daphne, both transports together."""

import pytest
import socketio
import websocket

from tests.factories import make_user, make_ward
from tests.support.sio import ChannelsClient, StreamClient, session_cookie, stream_client_once_admitted

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CAP = 20


def test_a_user_gets_at_most_twenty_sockets_and_another_user_is_unaffected(daphne_server):
    icu = make_ward("icu")
    hoarder, colleague = make_user("socket-hoarder", ward=icu), make_user("socket-colleague", ward=icu)
    opened: list = []
    try:
        for _ in range(CAP):  # each with its own session, as from 20 browser tabs and devices
            opened.append(StreamClient(daphne_server.url, cookie=session_cookie(hoarder)).connect())
        extra = StreamClient(daphne_server.url, cookie=session_cookie(hoarder))
        with pytest.raises(socketio.exceptions.ConnectionError, match="At most 20 connections"):
            extra.connect()
        with pytest.raises(websocket.WebSocketBadStatusException):
            opened.append(ChannelsClient(daphne_server.url, cookie=session_cookie(hoarder)))
        opened.append(StreamClient(daphne_server.url, cookie=session_cookie(colleague)).connect())
        opened[0].close()
        opened.append(stream_client_once_admitted(daphne_server.url, session_cookie(hoarder)))
    finally:
        for client in opened:
            client.close()
