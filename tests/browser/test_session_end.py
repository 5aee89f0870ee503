"""A page whose session ends elsewhere (signed out in another browser, expired) goes to the sign-in page."""

import pytest
from django.contrib.sessions.models import Session
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
