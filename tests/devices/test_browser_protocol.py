"""The browser's event names and state groupings come from the Python definitions, served into every page."""

import json
import re

import pytest
from django.test import Client

from devices.states import ACTIVE_SESSION_STATUSES, COMMAND_UNSETTLED_STATES
from devices.views.browser_protocol import browser_protocol
from protocol import events
from tests.factories import make_user, make_ward
from tests.support.processes import ROOT

EVENT_NAMES = {value for name, value in vars(events).items() if name.isupper() and isinstance(value, str)}


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/?view=station", "/accounts/login/"])
def test_every_page_carries_the_protocol_from_python(path: str) -> None:
    client = Client()
    client.force_login(make_user("reader", ward=make_ward("icu")))
    html = client.get(path, follow=True).content.decode()
    found = re.search(r'<script id="protocol-data" type="application/json">(.*?)</script>', html, re.S)
    assert found, f"{path} has no protocol-data script (templates/base.html)"
    protocol = json.loads(found.group(1))
    assert protocol["events"]["deviceEvents"] == list(events.DEVICE_EVENTS)
    served = {value for value in protocol["events"].values() if isinstance(value, str)}
    assert served <= EVENT_NAMES, f"served names the server does not define: {served - EVENT_NAMES}"
    assert protocol["activeSessionStatuses"] == list(ACTIVE_SESSION_STATUSES)
    assert protocol["unsettledCommandStates"] == list(COMMAND_UNSETTLED_STATES)


def test_no_event_name_is_copied_into_the_javascript() -> None:
    copies = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted((ROOT / "static" / "js").glob("*.js"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for name in EVENT_NAMES - {events.ERROR}
        if f'"{name}"' in line or f"'{name}'" in line
    ]
    assert not copies, "event names copied into static/js (use EVENTS from protocol.js):\n" + "\n".join(copies)


STRING_LIST = re.compile(r"""\[\s*((?:["'][\w-]+["']\s*,\s*)+["'][\w-]+["'])\s*,?\s*\]""")


def test_no_state_grouping_is_copied_into_the_javascript() -> None:
    """A list literal in static/js holding exactly the states of a served grouping is a copy of it."""
    groupings = {name: frozenset(values) for name, values in browser_protocol().items()
                 if name != "events" and isinstance(values, list)}  # fmt: skip
    copies = [
        f"{path.relative_to(ROOT)}:{number}: {found.group(0)} is {name} (use it from protocol.js)"
        for path in sorted((ROOT / "static" / "js").glob("*.js"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        for found in STRING_LIST.finditer(line)
        for name, values in groupings.items()
        if frozenset(re.findall(r"""["']([\w-]+)["']""", found.group(1))) == values
    ]
    assert not copies, "state groupings copied into static/js:\n" + "\n".join(copies)
