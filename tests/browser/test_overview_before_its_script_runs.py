"""The overview as the server renders it claims no calm, and looks as its script's first render does (review 42,
finding 6).

08eb63b made the monitor's server-rendered alarm list stop saying "No active alarms." before the page is live. The
overview's cards, as the server rendered them, still said a pump was "online" and "running", with its rate and time
remaining on the default green edge; the page's script greys them "Stale" until the ward's summary is in (review 36),
but before it runs, and for good if it never does (blocked, failed to load, a proxy's error), the cards said it
whatever the pumps did: only the yellow "Connecting…" banner hinted otherwise. The server now renders each card as
the script does while the page is not live: a pump not heard here (`overview.js` `heardHere`), greyed, in the same
box, so nothing moves as the script takes over.
"""

import re

import pytest
from playwright.sync_api import expect

from devices.models import Device
from tests.factories import make_device
from tests.support.browser import LAPTOP, TABLET

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RUNNING = '.pump-card[data-device-id="BRW_D_RUN"]'
# Each card's box within the grid, what it says it is and its words, as a nurse sees them (the station's banners and
# buttons above the grid are not the cards' own: their reserved room is another change's).
CARDS = """() => {
  const grid = document.getElementById("pump-grid").getBoundingClientRect();
  return [...document.querySelectorAll(".pump-card")].map((card) => {
    const box = card.getBoundingClientRect();
    return {
      device: card.dataset.deviceId, condition: card.dataset.condition, connectivity: card.dataset.connectivity,
      box: [box.left - grid.left, box.top - grid.top, box.width, box.height],
      label: card.querySelector('[data-field="condition-label"]').innerText,
      lastHeard: card.querySelector('[data-field="last-heard"]').innerText.replace(/\\d+ s ago/, "N s ago"),
      greyed: getComputedStyle(card).filter,
    };
  });
}"""


def never_live(page):
    """The page's socket never answers: its script renders every card as it does before the page is live."""
    page.route_web_socket(re.compile(r"/socket\.io/"), lambda socket: None)  # held open, never a word
    page.route(re.compile(r"/socket\.io/\?"), lambda route: route.abort())  # nor polling


def test_the_overview_before_its_script_runs_does_not_say_the_pump_is_online(open_page, running_pump):
    page = open_page(running_pump, "/")
    expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
    expect(page.locator(RUNNING)).to_have_attribute("data-condition", "running")
    page.route("**/static/js/overview.js", lambda route: route.abort())  # as the server renders it, no more
    page.reload()
    expect(page.locator("#connection-banner")).to_have_text("Connecting…")
    card = page.locator(RUNNING)
    expect(card, "the card says it hears the pump before the page does").to_have_attribute("data-connectivity", "stale")
    expect(card.locator('[data-field="connectivity"]')).not_to_have_text("online", ignore_case=True)
    expect(card.locator('[data-field="condition-label"]'), "the card says 'running' as if live").to_have_text("Stale")
    expect(card.locator('[data-field="last-heard"]')).to_have_text(re.compile(r"^Last heard \d+ s ago$"))
    assert "grayscale" in card.evaluate("card => getComputedStyle(card).filter"), "not greyed as not live"


def test_the_script_takes_the_cards_over_where_the_server_put_them(open_page, running_pump):
    ward = Device.objects.get(device_id="BRW_D_RUN").ward
    make_device("BRW_D_NEVER", ward=ward, bed="5")  # never heard
    page = open_page(running_pump, "/")
    never_live(page)
    page.reload()
    expect(page.locator(RUNNING)).to_have_attribute("data-condition", "stale")  # the script's first render
    scripted = page.evaluate(CARDS)
    page.route("**/static/js/overview.js", lambda route: route.abort())
    page.reload()
    expect(page.locator("#connection-banner")).to_have_text("Connecting…")
    assert page.evaluate(CARDS) == scripted, "the cards change as the script takes over"


def cards_placed(page) -> list[tuple[int, int]]:
    """Where each card begins, to the pixel (its height may differ by a fraction as its badge's word changes)."""
    boxes = [card.bounding_box() for card in page.locator(".pump-link").all()]
    return [(round(box["x"]), round(box["y"])) for box in boxes]


@pytest.mark.parametrize(
    "viewport",
    [LAPTOP, {"width": 1024, "height": 768}, TABLET, {"width": 390, "height": 844}],
    ids=["laptop", "small-laptop", "tablet", "phone"],
)
def test_the_cards_stay_where_the_server_put_them_as_the_page_goes_live(open_page, running_pump, viewport):
    """The ward's summary has a row of its own below 900 px: the server's "2 pumps" fitted beside the heading on a phone
    and the script's "1 infusing · 1 never heard" wrapped under it, every card 40 px down as the script ran."""
    ward = Device.objects.get(device_id="BRW_D_RUN").ward
    make_device("BRW_D_NEVER", ward=ward, bed="5")
    page = open_page(running_pump, "/", viewport)
    expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
    expect(page.locator("#ward-summary")).to_have_text("1 infusing · 1 never heard")
    live = cards_placed(page)
    page.route("**/static/js/overview.js", lambda route: route.abort())
    page.reload()
    expect(page.locator("#connection-banner")).to_have_text("Connecting…")
    served = cards_placed(page)
    assert served == live, f"the cards moved at {viewport['width']} px as the script ran and the page went live"
