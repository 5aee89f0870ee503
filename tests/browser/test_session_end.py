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
