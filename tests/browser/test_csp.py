"""Every page works under the Content-Security-Policy in Chromium, with no violation reported."""

import pytest
from playwright.sync_api import expect

from tests.factories import make_device, make_user, make_ward
from tests.support.browser import LAPTOP, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# Recorded from the start of each document: the browser's own report of anything the policy blocked.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => window.__cspViolations.push(
  `${event.violatedDirective} blocked ${event.blockedURI || "inline"} at ${event.sourceFile}:${event.lineNumber}`));
"""


def visit(chromium, base_url: str, user, path: str):
    """A fresh context (signed in as `user`, if any) on `path`, recording CSP violations and console reports."""
    context = chromium.new_context(viewport=LAPTOP, locale="en-GB")
    if user is not None:
        context.add_cookies([session_cookie(user, base_url)])
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.set_default_timeout(15_000)
    console = []
    page.on("console", lambda message: console.append(message.text))
    response = page.goto(base_url + path)
    assert response.headers.get("content-security-policy"), f"{path} was served without a CSP"
    return context, page, console


def assert_no_violations(page, console, path: str) -> None:
    page.wait_for_timeout(500)
    violations = page.evaluate("window.__cspViolations")
    reported = [text for text in console if "Content Security Policy" in text]
    assert not violations and not reported, f"{path}: CSP violations {violations} {reported}"


def test_pages_work_under_the_policy(chromium, stack):
    icu = make_ward("icu")
    make_device("BRW_CSP", ward=icu, bed="3")
    make_device("BRW_CSP_ER", ward=make_ward("er"))
    nurse = make_user("csp-nurse", ward=icu)
    make_ward("er").members.add(nurse)  # two wards: the ward filter (once an inline handler) is shown
    admin = make_user("csp-admin", is_staff=True, is_superuser=True)
    checks = [
        (None, "/accounts/login/", lambda page: expect(page.get_by_label("Username")).to_be_visible()),
        (nurse, "/", lambda page: expect(page.locator("#connection-banner")).to_have_text("Live")),
        # the script's own word (the server renders the pump's status line itself now: its "…" proved nothing)
        (nurse, "/devices/BRW_CSP/", lambda page: expect(page.locator("#connection-banner")).to_have_text("Live")),
        (nurse, "/devices/BRW_CSP/start/", lambda page: expect(page.locator("#wizard-form")).to_be_visible()),
        (admin, "/admin/", lambda page: expect(page.locator("#site-name")).to_be_visible()),
        (admin, "/admin/devices/device/", lambda page: expect(page.locator("#result_list")).to_be_visible()),
        (admin, "/ops/", lambda page: expect(page.locator("h1")).to_be_visible()),
    ]
    for user, path, works in checks:
        context, page, console = visit(chromium, stack["url"], user, path)
        try:
            works(page)
            assert_no_violations(page, console, path)
        finally:
            context.close()


def test_the_ward_filter_still_submits_without_its_inline_handler(chromium, stack):
    icu, er = make_ward("icu"), make_ward("er")
    make_device("BRW_CSP_A", ward=icu)
    make_device("BRW_CSP_B", ward=er)
    nurse = make_user("csp-filter", ward=icu)
    er.members.add(nurse)
    context, page, console = visit(chromium, stack["url"], nurse, "/")
    try:
        page.select_option("#ward-select", "er")
        expect(page).to_have_url(f"{stack['url']}/?ward=er")
        expect(page.locator('.pump-card[data-device-id="BRW_CSP_B"]')).to_be_visible()
        assert page.locator('.pump-card[data-device-id="BRW_CSP_A"]').count() == 0
        assert_no_violations(page, console, "/?ward=er")
    finally:
        context.close()
