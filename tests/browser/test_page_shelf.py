"""The browser tests' kept pages (`tests/support/page_shelf.py`) come to the next test as good as new: no storage,
cookie or script of the test before; a page its test changed beyond its document is never kept."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tests.factories import make_user, make_ward
from tests.support.browser import LAPTOP, TABLET, session_cookie
from tests.support.page_shelf import CARRIED, MAX_USES, PageShelf, marked_methods, public_methods

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LEAVE_TRACES = """() => {
    sessionStorage.setItem("trace", "1");
    localStorage.setItem("trace", "1");
    document.cookie = "trace=1; path=/";
    window.traceOnTheWindow = true;
}"""
TRACES = """() => ({session: sessionStorage.getItem("trace"), local: localStorage.getItem("trace"),
                   cookie: document.cookie.includes("trace"), window: window.traceOnTheWindow ?? null})"""
NO_TRACES = {"session": None, "local": None, "cookie": False, "window": None}


@pytest.fixture
def shelf(chromium):
    with_shelf = PageShelf(chromium)
    yield with_shelf
    with_shelf.close()


def test_a_kept_page_holds_nothing_of_the_test_before(shelf, stack):
    nurse = make_user("shelf-nurse", ward=make_ward("shelf"))
    shelf.test_started()
    _, first = shelf.open(session_cookie(nurse, stack["url"]), stack["url"], "/", LAPTOP)
    expect(first.locator("#connection-banner")).to_have_text("Live")
    first.evaluate(LEAVE_TRACES)
    shelf.test_ended(stack["url"], passed=True)

    shelf.test_started()
    context, page = shelf.open(None, stack["url"], "/", LAPTOP)
    assert page is first, "the clean page was not kept"
    expect(page).to_have_url(f"{stack['url']}/accounts/login/?next=/")  # its session cookie went with its test
    assert page.evaluate(TRACES) == NO_TRACES, "the kept page carried the last test's traces"
    assert page.go_back() is None, "the kept page's history went back past this test's first page"
    names = [cookie["name"] for cookie in context.cookies()]
    assert "trace" not in names and settings.SESSION_COOKIE_NAME not in names, f"the last test's cookies: {names}"
    shelf.test_ended(stack["url"], passed=True)


def test_a_page_changed_beyond_its_document_is_not_kept(shelf, stack):
    nurse = make_user("shelf-nurse", ward=make_ward("shelf"))
    for taint in (lambda page: page.context.add_init_script("window.traceOnTheWindow = true"),
                  lambda page: page.clock.install(),
                  lambda page: page.on("console", lambda message: None),
                  lambda page: page.emulate_media(reduced_motion="reduce"),
                  lambda page: page.context.new_page()):  # fmt: skip
        shelf.test_started()
        _, tainted = shelf.open(session_cookie(nurse, stack["url"]), stack["url"], "/", LAPTOP)
        taint(tainted)
        shelf.test_ended(stack["url"], passed=True)
        shelf.test_started()
        _, page = shelf.open(None, stack["url"], "/", LAPTOP)
        assert page is not tainted and tainted.is_closed(), "a page its test changed beyond its document was kept"
        assert page.evaluate(TRACES) == NO_TRACES
        shelf.test_ended(stack["url"], passed=True)


def test_routes_and_the_offline_switch_are_undone_on_a_kept_page(shelf, stack):
    nurse = make_user("shelf-nurse", ward=make_ward("shelf"))
    shelf.test_started()
    context, first = shelf.open(session_cookie(nurse, stack["url"]), stack["url"], "/", LAPTOP)
    first.route("**/*", lambda route: route.abort())
    context.route("**/*", lambda route: route.abort())
    context.set_offline(True)
    shelf.test_ended(stack["url"], passed=True)
    shelf.test_started()
    _, page = shelf.open(session_cookie(nurse, stack["url"]), stack["url"], "/", LAPTOP)
    assert page is first, "a page whose routes and offline switch could be undone was not kept"
    expect(page.locator("#connection-banner")).to_have_text("Live")  # it loads, its socket connects
    shelf.test_ended(stack["url"], passed=True)


def test_pages_are_kept_by_their_size_and_never_shared_within_a_test(shelf, stack):
    nurse = make_user("shelf-nurse", ward=make_ward("shelf"))
    shelf.test_started()
    opened = [shelf.open(session_cookie(nurse, stack["url"]), stack["url"], "/", size)[1] for size in (LAPTOP, TABLET)]
    shelf.test_ended(stack["url"], passed=True)
    shelf.test_started()
    tablet = shelf.open(None, stack["url"], "/", TABLET)[1]
    laptop = shelf.open(None, stack["url"], "/", LAPTOP)[1]
    another = shelf.open(None, stack["url"], "/", LAPTOP)[1]
    assert [laptop, tablet] == opened, "a kept page came back in another size"
    assert another not in opened, "two pages of one test were one page"
    assert tablet.viewport_size == TABLET
    shelf.test_ended(stack["url"], passed=True)


def test_the_pages_of_a_failed_test_or_a_worn_page_are_not_kept(shelf, stack):
    shelf.test_started()
    _, failed = shelf.open(None, stack["url"], "/", LAPTOP)
    shelf.test_ended(stack["url"], passed=False)  # what it left half-done is not looked for: it goes
    shelf.test_started()
    _, page = shelf.open(None, stack["url"], "/", LAPTOP)
    assert page is not failed and failed.is_closed(), "a failed test's page was kept"
    shelf.test_ended(stack["url"], passed=True)
    for _ in range(MAX_USES - 1):
        shelf.test_started()
        assert shelf.open(None, stack["url"], "/", LAPTOP)[1] is page
        shelf.test_ended(stack["url"], passed=True)
    assert page.is_closed(), f"a page served more than {MAX_USES} tests"


def test_a_kept_page_that_died_on_the_shelf_is_replaced(shelf, stack):
    shelf.test_started()
    context, first = shelf.open(None, stack["url"], "/", LAPTOP)
    shelf.test_ended(stack["url"], passed=True)
    first.close()  # as a renderer that crashed
    shelf.test_started()
    _, page = shelf.open(None, stack["url"], "/", LAPTOP)
    expect(page).to_have_url(f"{stack['url']}/accounts/login/?next=/")
    shelf.test_ended(stack["url"], passed=True)


# Reviewed: what these do ends with the page's document, or is set anew for each test (`set_default_timeout`), or
# undone by the shelf (`unroute*`, cookies, console messages); `CARRIED` is what a kept page still tells.
DOCUMENT_ONLY = {
    "Page": set(
        "add_script_tag add_style_tag aria_snapshot bring_to_front cancel_pick_locator check "
        "clear_console_messages clear_page_errors click close console_messages content dblclick "
        "dispatch_event eval_on_selector eval_on_selector_all evaluate evaluate_handle fill focus frame "
        "frame_locator get_attribute go_back go_forward goto hide_highlight hover inner_html inner_text "
        "input_value locator opener page_errors pdf press query_selector query_selector_all reload "
        "remove_listener remove_locator_handler request_gc screenshot select_option set_checked set_content "
        "set_default_timeout set_input_files tap text_content title type uncheck unroute unroute_all".split()
    ),
    "BrowserContext": set(
        "add_cookies clear_cookies clear_permissions close cookies is_closed remove_listener storage_state "
        "unroute unroute_all".split()
    ),
    "Clock": set("on once remove_listener".split()),
    "Keyboard": set("insert_text on once press remove_listener type up".split()),
    "Mouse": set("click dblclick move on once remove_listener up wheel".split()),
    "Tracing": set("group group_end on once remove_listener stop stop_chunk stop_har".split()),
}
READS_OR_WAITS = re.compile(r"^(expect_|wait_for_|get_by_|is_)")


def test_every_playwright_method_that_could_outlive_a_document_is_decided():
    """A Playwright upgrade's new method fails here until it is marked (`page_shelf.marked_methods`) or reviewed."""
    marked = marked_methods()
    classes = {cls.__name__: cls for cls, _ in marked if cls.__name__ in DOCUMENT_ONLY}
    for name, cls in classes.items():
        undecided = {method for method in public_methods(cls) if (cls, method) not in marked
                     and method not in DOCUMENT_ONLY[name] and method not in CARRIED
                     and not READS_OR_WAITS.match(method)}  # fmt: skip
        assert not undecided, f"{name}'s methods neither marked nor reviewed for kept pages: {sorted(undecided)}"


def test_no_test_reads_what_a_kept_page_carries():
    folders = [Path(__file__).parent, Path(__file__).parent.parent / "clinical"]
    uses = [f"{path.name}: .{method}(" for folder in folders for path in folder.glob("*.py")
            if path.name != Path(__file__).name for method in CARRIED
            if f".{method}(" in path.read_text()]  # fmt: skip
    assert not uses, f"tests read what a kept page carries from the tests before it: {uses}"
