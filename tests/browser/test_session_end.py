"""A page whose session ends elsewhere (signed out in another browser, expired) goes to the sign-in page."""

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone
from playwright.sync_api import expect

from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_page_whose_session_ended_asks_to_sign_in_again(open_page, stack):
    icu = make_ward("icu")
    make_device("BRW_SESSION_END", ward=icu)
    nurse = make_user("session-end-nurse", ward=icu)
    page = open_page(nurse, "/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    Session.objects.all().delete()  # what a sign-out elsewhere, or the session's expiry, leaves
    expect(page).to_have_url(f"{stack['url']}/accounts/login/?next=/", timeout=10_000)


def test_a_monitor_whose_session_idled_out_asks_to_sign_in_again(open_page, stack):
    """Its own bridge poll no longer moves the idle limit (pumpstream/sessions.py): once the limit comes, the page
    must not go on looking live with a dead session (the poll gets 401; the socket is closed and refused)."""
    icu = make_ward("icu")
    make_device("BRW_SESSION_IDLE", ward=icu)
    nurse = make_user("session-idle-nurse", ward=icu)
    page = open_page(nurse, "/devices/BRW_SESSION_IDLE/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    Session.objects.update(expire_date=timezone.now())  # the idle limit reached, the row still there
    expect(page).to_have_url(f"{stack['url']}/accounts/login/?next=/devices/BRW_SESSION_IDLE/", timeout=10_000)


@pytest.mark.parametrize("path", ["/devices/BRW_SESSION_POLL/", "/devices/BRW_SESSION_POLL/start/"])
def test_a_page_whose_socket_is_down_still_asks_to_sign_in_when_its_session_ends(open_page, stack, path):
    """The bridge poll alone tells the page (its socket down, so no refused reconnect): a 401 reloads it, and the
    server asks to sign in, rather than polling on silently under data it no longer receives."""
    icu = make_ward("icu")
    make_device("BRW_SESSION_POLL", ward=icu)
    nurse = make_user("session-poll-nurse", ward=icu)
    page = open_page(nurse, path)
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.evaluate("() => window.pumpstreamLive.socket.disconnect()")  # a manual disconnect: never retried
    expect(page.locator("#connection-banner")).not_to_have_text("Live")
    Session.objects.update(expire_date=timezone.now())
    expect(page).to_have_url(f"{stack['url']}/accounts/login/?next={path}", timeout=15_000)


def test_the_operations_page_asks_to_sign_in_when_its_session_ends(open_page, stack):
    """Its poll was sent to the sign-in page, read that as JSON and said "the server is unreachable", for good."""
    page = open_page(make_user("session-ops", is_staff=True), "/ops/")
    expect(page.locator("#ops-at")).not_to_be_empty()
    Session.objects.update(expire_date=timezone.now())
    expect(page).to_have_url(f"{stack['url']}/accounts/login/?next=/ops/", timeout=10_000)
