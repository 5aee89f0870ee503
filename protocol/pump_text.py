"""Text a pump sends, as the server keeps it: without the characters that set its direction (review 36, finding 6).

A pump's words are shown inside the server's own ("The pump refused the order, its reason: …", a station's "Bed 3 ·
<alarm message> · for 12 s · ESCALATED"): an embedding, override or isolate the pump leaves open (U+202E) runs on over
the server's words after it and shows them reversed; a mark (LRM, RLM, ALM) turns the neutral characters beside it
around. No pump needs them to name an alarm or a reason, so they are dropped where its message is read
(`protocol/schemas.py`), before anything stores, compares or shows its text.
"""

# Unicode's Bidi_Control characters: ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DROPPED = dict.fromkeys(map(ord, BIDI_CONTROLS))


def without_bidi_controls(text: str) -> str:
    """`text` without Unicode's direction controls: a pump's text never turns the server's words after it around."""
    return text.translate(_DROPPED)
