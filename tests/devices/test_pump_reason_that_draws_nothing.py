"""Review 36: a pump's reason for refusing a START is shown as it gave it (29ad92b, start_refusals.refusal_reason),
kept when `reason.strip()` leaves anything. A reason of characters that draw nothing (a firmware's zero-width padding,
a stray BOM) passes `strip()`, as the drug of review 33 did: the waiting window and the monitor then read "The pump
refused the order, its reason: ." with nothing where the reason is. The rule 29d5d64/836f2f6 apply to the drug and the
reasons people type (devices/visible_text.shows_nothing) is not applied to the reason the pump types."""

import pytest

from devices.services.start_refusals import refusal_reason
from protocol.visible_text import shows_nothing


@pytest.mark.parametrize("reason", ["\u200b", "\ufeff\u200d", " \u2060 "])
def test_a_reason_that_draws_nothing_is_said_as_none_given(reason):
    said = refusal_reason(reason)
    tail = said.rsplit(":", 1)[-1] if "its reason:" in said else said
    assert not ("its reason:" in said and shows_nothing(tail)), (
        f"the pump's reason {reason!r} is shown as {said!r}: 'its reason:' followed by nothing a screen draws "
        "(expected 'refused by the pump, no reason given')"
    )


BIDI_EMBEDDINGS = "\u202a\u202b\u202d\u202e\u2066\u2067\u2068"  # LRE RLE LRO RLO LRI RLI FSI
BIDI_ENDS = "\u202c\u2069"  # PDF PDI


def test_a_reason_carrying_a_bidi_override_does_not_turn_the_servers_words_after_it():
    """The waiting window writes the session's reason, then its own sentence ("The pump reports an infusion running,
    not this order: check the pump."), in one text: an override the pump's reason leaves open (U+202E) runs to the
    paragraph's end and shows the server's sentence reversed."""
    said = refusal_reason("busy\u202e")
    opened = sum(said.count(mark) for mark in BIDI_EMBEDDINGS)
    closed = sum(said.count(mark) for mark in BIDI_ENDS)
    assert opened <= closed, f"the session's reason {said!r} leaves {opened - closed} bidi override(s) open"
