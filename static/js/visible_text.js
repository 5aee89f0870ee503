// Whether text a clinician types shows anything on a screen, by the server's rule (devices/visible_text.py, held
// equal by tests/devices/test_visible_text_rule.py): whitespace, format characters (zero-width space, joiners, word
// joiner, byte-order mark, soft hyphen), controls, separators, combining marks alone and the blank-by-design Hangul
// fillers and Braille pattern draw nothing, so a drug of only those is no drug (review 33: "\u200b" passed `trim()`).

const DRAWN = /[^\s\p{Cc}\p{Cf}\p{Zs}\p{Zl}\p{Zp}\p{Mn}\p{Me}\u115f\u1160\u3164\uffa0\u2800]/u;

/** True when `text` has no character a screen draws. */
export function showsNothing(text) {
  return !DRAWN.test(text);
}
