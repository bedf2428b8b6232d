"""The pages' files and the headers every page is served with: the review page, the A/B view
and the API page (critic.web.routes, critic.web.docs)."""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse

STATIC = Path(__file__).with_name("static")

# The pages load only their own script and style and talk only to this server: even if a
# review's text were ever put into the page as HTML, the browser would refuse to run it.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def html_page(name: str) -> FileResponse:
    """The page ``static/NAME``, with the pages' headers."""
    return FileResponse(STATIC / name, media_type="text/html", headers=PAGE_HEADERS)
