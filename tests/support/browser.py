"""Debian's headless chromium driven by Playwright, signed in as a test user without typing a password."""

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.test import Client

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]  # fmt: skip
LAPTOP = {"width": 1366, "height": 900}
TABLET = {"width": 820, "height": 1180}


def launch_chromium(playwright):
    """Chromium 156 from Debian (Playwright never downloads a browser here)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def session_cookie(user, base_url: str) -> dict:
    """A signed-in session for `user`, as a Playwright cookie for `base_url`."""
    client = Client()
    client.force_login(user)
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": base_url}  # fmt: skip


@contextmanager
def django_db_beside_playwright() -> Iterator[None]:
    """Allow ORM calls from the test while Playwright's sync API holds an event loop in this thread."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def screenshot(page, artifacts_dir: Path, name: str) -> Path:
    """Keep a full-page screenshot as a test artifact."""
    path = artifacts_dir / "browser" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def measure(action: Callable[[], object], until: Callable[[], object]) -> float:
    """Seconds from `action` until `until` returns (it must wait by itself, e.g. a Playwright expectation)."""
    started = time.perf_counter()
    action()
    until()
    return time.perf_counter() - started
