"""The wizard tells a drug or a patient's name that shows nothing at its own step, by the server's rule: every
character of the Basic Multilingual Plane that the server's Unicode table assigns is judged alike by
`devices/visible_text.py::shows_nothing` and `static/js/visible_text.js::showsNothing` (the server refuses such a name
with a 400, review 33; the page must not let the nurse reach the review with it). The two tables are of different
Unicode versions: node 20's assigns marks Python 3.11's does not (U+0897, U+1ACF…, which the server takes as drawn,
a name of them then placed and shown as the browser draws it), and beyond the BMP they differ on U+1171E (Mn in
Python's, Mc in node's)."""

import json
import shutil
import unicodedata
from pathlib import Path

import pytest

from protocol.visible_text import shows_nothing
from tests.support.node import page_script_result

VISIBLE_TEXT_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "visible_text.js"
ASSIGNED_BMP = {chr(code) for code in range(0x10000) if unicodedata.category(chr(code)) not in ("Cn", "Cs")}


def test_the_characters_review_33_named_show_nothing_and_letters_do():
    assert shows_nothing("\u200b") and shows_nothing(" \u200c\u200d\u2060\ufeff\u00a0 ") and shows_nothing("")
    assert not shows_nothing("\u200bHeparin") and not shows_nothing("Ω") and not shows_nothing("0")


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_the_wizard_judges_every_character_as_the_server_does():
    script = f"""const {{ showsNothing }} = await import({json.dumps(VISIBLE_TEXT_JS.as_uri())});
const out = [];
for (let code = 0; code < 0x10000; code++) {{
  if (code >= 0xd800 && code <= 0xdfff) continue;
  if (showsNothing(String.fromCodePoint(code))) out.push(code);
}}
console.log(JSON.stringify(out));"""
    page = {chr(code) for code in page_script_result(script)} & ASSIGNED_BMP
    server = {character for character in ASSIGNED_BMP if shows_nothing(character)}
    differ = sorted(page ^ server)
    named = [f"U+{ord(c):04X} {unicodedata.name(c, '?')} ({'page' if c in page else 'server'})" for c in differ]
    assert not differ, f"the wizard and the server judge {len(differ)} characters apart: {named[:20]}"
