"""What a pump's refusal of a START means, in the words the record, the waiting window and the monitor tell.

The original firmware's only refusal is its `rejected` status: a person tapped Reject on its confirm screen. Today's
firmware answers `confirmed: false` with a `reason` (`docs/simulator.md`): `rejected_at_pump` (Reject tapped) or
`pump_busy` (it is busy with an infusion of its own: nobody pressed anything, and something runs). Review 33, finding 2:
every refusal was told "someone at the pump pressed Reject. Nothing is running.", beside a pump reporting running.
A reason the contract does not name is kept as the pump gave it, without the direction controls that would turn the
server's words after it around (protocol/pump_text.py); none given, or one a screen draws nothing of (zero-width
characters only: "its reason: ." with nothing where the reason is, review 36), is said as none given.
"""

from protocol.visible_text import shows_nothing, without_bidi_controls

REJECTED_AT_THE_PUMP = "rejected at the pump"  # a person tapped Reject at the pump
REFUSED_BY_THE_PUMP = "refused by the pump"  # the pump's own answer, its reason after it
REFUSAL_REASONS = {
    "rejected_at_pump": REJECTED_AT_THE_PUMP,
    "pump_busy": f"{REFUSED_BY_THE_PUMP}: it is busy with an infusion of its own (pump_busy)",
}
MAX_REASON_SHOWN = 120


def refusal_reason(reason: object) -> str:
    """The session's reason for a `confirmed: false` giving `reason` (the pump's word, or None)."""
    if isinstance(reason, str) and reason in REFUSAL_REASONS:
        return REFUSAL_REASONS[reason]
    shown = without_bidi_controls(reason).strip()[:MAX_REASON_SHOWN] if isinstance(reason, str) else ""
    if shows_nothing(shown):
        return f"{REFUSED_BY_THE_PUMP}, no reason given"
    return f"{REFUSED_BY_THE_PUMP}, its reason: {shown}"
