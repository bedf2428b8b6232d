"""The API page (/docs) offline, in a real browser: every request to any host but this server
is refused, and the page still shows the invocation route and its content types."""

import json
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import expect

from critic.web.pages import PAGE_HEADERS
from support.servers import running_server


@pytest.fixture(scope="module")
def server(nbsvm_bundle):
    with running_server(["serve", str(nbsvm_bundle), "--feedback-db", "off"]) as server:
        yield server.url


def test_the_api_page_works_with_no_network_and_asks_nothing_of_another_host(server, page):
    host = urllib.parse.urlsplit(server).netloc
    asked, refused, csp_violations = [], [], []
    page.on("console", lambda message: message.type == "error" and csp_violations.append(
        message.text))  # fmt: skip

    def route(request_route):
        url = request_route.request.url
        asked.append(url)
        if urllib.parse.urlsplit(url).netloc == host:
            request_route.continue_()
        else:  # as on a machine without internet access
            refused.append(url)
            request_route.abort()

    page.route("**/*", route)
    page.goto(f"{server}/docs")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/invocations" in paths and "/endpoints/{endpoint_name}/invocations" in paths
    page.locator(".opblock-summary-path", has_text="/invocations").first.click()
    body_types = page.locator(".opblock-body select").first.inner_text()
    for content_type in ("text/plain", "application/json", "text/csv", "application/jsonlines"):
        assert content_type in body_types
    assert refused == [], refused
    assert asked and all(urllib.parse.urlsplit(url).netloc == host for url in asked)
    assert not [text for text in csp_violations if "Content Security Policy" in text]


def test_the_api_page_has_the_pages_security_headers_and_fastapis_cdn_pages_are_gone(server):
    with urllib.request.urlopen(f"{server}/docs") as response:
        html = response.read().decode()
        for name, value in PAGE_HEADERS.items():
            assert response.headers[name] == value
    assert "cdn" not in html.lower() and "<script>" not in html  # no inline script
    with urllib.request.urlopen(f"{server}/docs/assets/swagger-ui-bundle.js") as response:
        assert response.status == 200 and b"SwaggerUIBundle" in response.read()
    for gone in ("/redoc", "/docs/oauth2-redirect"):
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"{server}{gone}")
        assert raised.value.code == 404
    with urllib.request.urlopen(f"{server}/openapi.json") as response:
        assert "/invocations" in json.loads(response.read())["paths"]
