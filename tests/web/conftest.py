"""Fixtures of the page's browser tests: Debian's chromium, driven by Playwright, and a fresh
page for each test (see support/browser.py for why Debian's chromium)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def browser():
    # Imported here: the tests of this folder that use no browser collect without it.
    from playwright.sync_api import expect, sync_playwright

    from support.browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (make browser, or apt-get install chromium)"
        )
    expect.set_options(timeout=30_000)  # a loaded 2-core machine can be slow to answer
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"the page raised: {errors}"
