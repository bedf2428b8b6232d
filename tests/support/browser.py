"""What the page's browser tests share: the chromium they drive, and what they do on the page.

Playwright's own browser download cannot work here (no network); `make test` and `.ci/run`
install Debian's chromium, which these tests launch. Without it they fail, loudly: a page
nobody has looked at in a browser is not tested. The browser and page fixtures are in
tests/web/conftest.py.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

from playwright.sync_api import expect

CHROMIUM = Path(os.environ.get("CRITIC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    # The machine's network is closed: without these, chromium keeps trying to reach Google.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REVIEW = "A wonderful film: the acting is superb, the story moved me and I loved every minute!"


def ask(url, review, variant):
    """The endpoint's own answer for a review, from the same variant (what the page must show)."""
    request = urllib.request.Request(
        f"{url}/invocations?explain=true",
        data=json.dumps({"instances": [review]}).encode(),
        headers={"Content-Type": "application/json", "X-Amzn-SageMaker-Target-Variant": variant},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["predictions"][0]


def judge(page, url, review):
    page.goto(url)
    page.get_by_label("Your movie review").fill(review)
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#result")).to_be_visible()
