"""The command envelope: what the outbox publishes is what a pump reads back, expiry included."""

from datetime import UTC, datetime, timedelta

import pytest

from protocol.commands import EnvelopeUnreadable, command_envelope_build, command_envelope_parse

NOW = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)


def test_a_pump_reads_back_what_the_server_built() -> None:
    built = command_envelope_build(kind="PAUSE_INFUSION", payload={"infusionId": "inf-1"}, command_id="c-1",
                                   expires_at=NOW + timedelta(seconds=30), now=NOW)  # fmt: skip
    read = command_envelope_parse(built.encoded())
    assert read == built, f"the envelope changed on the wire: {built} became {read}"
    assert set(built.wire()) == {"command", "payload", "timestamp", "commandId", "expiresAt"}


def test_expiry_is_read_from_expires_at_and_an_unreadable_one_never_expires() -> None:
    built = command_envelope_build(kind="STOP_INFUSION", payload={}, command_id="c-2", expires_at=NOW, now=NOW)
    assert built.is_expired(now=NOW + timedelta(seconds=1)), "a command past expiresAt must be expired"
    assert not built.is_expired(now=NOW - timedelta(seconds=1)), "a command before expiresAt is not expired"
    assert not command_envelope_parse(b'{"command": "STOP_INFUSION", "expiresAt": "soon"}').is_expired()


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"payload": {}}', b"\xff"])
def test_a_message_without_a_command_is_unreadable(raw: bytes) -> None:
    with pytest.raises(EnvelopeUnreadable):
        command_envelope_parse(raw)
