"""Whether free text a clinician types shows anything on a screen (review 33: a drug of only a zero-width space passed
`strip()`, and the order was shown with a blank drug)."""

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
