"""Whether text shows anything on a screen, and a pump's text as the server keeps it: one rule for the words people
type and the words pumps send, in `protocol/` so the wire's parsing (`protocol/schemas.py`) uses it as the domain does.

Text that draws nothing (review 33: a drug of only a zero-width space passed `strip()`, and the order was shown with a
blank drug; review 36: a pump's refusal reason or alarm type of zero-width characters read as a blank) is no text.

A pump's words are shown inside the server's own ("The pump refused the order, its reason: …", a station's "Bed 3 ·
<alarm message> · for 12 s · ESCALATED"): an embedding, override or isolate the pump leaves open (U+202E) runs on over
the server's words after it and shows them reversed; a mark (LRM, RLM, ALM) turns the neutral characters beside it
around. No pump needs them to name an alarm or a reason, so they are dropped where its message is read
(`protocol/schemas.py`), before anything stores, compares or shows its text (review 36, finding 6). The words people
type are shown so too (a drug, a bed, a silence's reason): the services keep them without these controls, whoever
called them (review 37, finding 8; review 39).
"""

import unicodedata

# Unicode categories that draw nothing of their own: controls, format characters (zero-width space, joiners, word
# joiner, byte-order mark, soft hyphen), separators, and combining marks with no letter to sit on.
DRAWS_NOTHING = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})
# Letters and symbols blank by design: the Hangul fillers and the blank Braille pattern.
BLANK_GLYPHS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


def shows_nothing(text: str) -> bool:
    """Whether `text` has no character a screen draws (empty, whitespace, zero-width and format characters only)."""
    return not any(_drawn(character) for character in text)


def _drawn(character: str) -> bool:
    if character.isspace() or character in BLANK_GLYPHS:
        return False
    return unicodedata.category(character) not in DRAWS_NOTHING


# Unicode's Bidi_Control characters: ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DROPPED = dict.fromkeys(map(ord, BIDI_CONTROLS))


def without_bidi_controls(text: str) -> str:
    """`text` without Unicode's direction controls: a pump's or a person's text never turns the server's words after
    it around."""
    return text.translate(_DROPPED)


def text_kept(text: str) -> str:
    """A person's free text as the server keeps it (a silence's reason, a command's, a resolve note): without direction
    controls, stripped, and "" when a screen draws nothing of it, so that no page shows a blank that looks filled in nor
    the server's words after it reversed (review 39)."""
    kept = without_bidi_controls(text).strip()
    return "" if shows_nothing(kept) else kept
