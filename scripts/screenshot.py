"""Screenshot the page answering a review, for the README.

    critic serve runs/lstm &            # any served endpoint
    python scripts/screenshot.py http://127.0.0.1:8080 docs/page.png

Drives Debian's chromium with Playwright, like the browser tests.
"""

from __future__ import annotations

import argparse

from playwright.sync_api import expect, sync_playwright

REVIEW = (
    "The first half drags and the dialogue is clumsy, but the performances are wonderful and "
    "the ending is beautiful. A flawed but moving film that I would happily watch again."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the endpoint, e.g. http://127.0.0.1:8080")
    parser.add_argument("out", help="the PNG to write")
    parser.add_argument("--review", default=REVIEW)
    parser.add_argument("--variant", help="ask this variant (the page's ?variant=NAME)")
    parser.add_argument("--width", type=int, default=900)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=args.chromium,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": args.width, "height": 800})
        page.goto(args.url + (f"/?variant={args.variant}" if args.variant else ""))
        page.get_by_label("Your movie review").fill(args.review)
        page.get_by_role("button", name="Submit").click()
        expect(page.locator("#result")).to_be_visible(timeout=30_000)
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
