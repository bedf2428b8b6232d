"""The page in a real browser: Debian's chromium, driven by Playwright, against `critic serve`
(the browser and page fixtures: tests/web/conftest.py)."""

import json
import re
import sqlite3
import urllib.request

import pytest
from playwright.sync_api import expect

from critic.data.prepare import load_splits
from critic.inference.bundle import load_bundle
from support.browser import REVIEW, ask, judge
from support.servers import running_server


@pytest.fixture(scope="module")
def server(trained_bundle, second_bundle, tmp_path_factory):
    feedback_db = tmp_path_factory.mktemp("web") / "feedback.sqlite"
    with running_server(
        ["serve", "--variant", f"champion={trained_bundle}:1",
         "--variant", f"challenger={second_bundle}:1", "--feedback-db", feedback_db]
    ) as server:  # fmt: skip
        yield server.url, feedback_db


def test_a_review_gets_the_verdict_rating_confidence_variant_and_highlighted_words(server, page):
    url, _ = server
    judge(page, url, REVIEW)
    variant = page.locator("#variant").inner_text()
    assert variant in ("champion", "challenger")
    truth = ask(url, REVIEW, variant)
    expect(page.locator("#verdict")).to_have_text(truth["label"].upper())
    expect(page.locator("#rating")).to_have_text(str(truth["rating"]))
    score = truth["score"]  # the calibrated probability: what the page shows
    sure = round(100 * max(score, 1 - score))
    expect(page.locator("#confidence")).to_have_text(f"{sure}% sure it is {truth['label']}")
    expect(page.locator("#confidence-bar")).to_have_attribute("aria-valuenow", str(sure))
    expect(page.locator("#model")).to_have_text("lstm")
    expect(page.locator("#elapsed")).to_have_text(re.compile(r"^\d+ ms$"))
    # The review is shown whole, and its strongest words are marked with the server's weights.
    expect(page.locator("#highlighted")).to_have_text(REVIEW)
    weights = {entry["word"]: entry["weight"] for entry in truth["words"]}
    marks = page.locator("#highlighted mark.word")
    assert marks.count() >= 1
    for index in range(marks.count()):
        mark = marks.nth(index)
        word = mark.inner_text().lower()
        weight = float(mark.get_attribute("data-weight"))
        assert weight == pytest.approx(weights[word], abs=0.006)
        assert ("pos" if weight > 0 else "neg") in mark.get_attribute("class")
    strongest = max(weights, key=lambda word: abs(weights[word]))
    side = "#top-positive" if weights[strongest] > 0 else "#top-negative"
    expect(page.locator(f"{side} li").first).to_contain_text(strongest)


def test_a_review_unlike_the_models_own_is_flagged_and_a_typical_one_is_not(
    server, page, trained_bundle
):
    url, _ = server
    unusual = "Zqxv blorf wuggle trenz pliv quorb snaff yelm drofk vintz " * 5
    held_out = load_splits(load_bundle(trained_bundle).config.data)["validation"].texts
    typical = next(text for text in held_out if ask(url, text, "champion")["domain"]["typical"])
    for review, flagged in ((unusual, True), (typical, False), (unusual, True)):
        page.goto(f"{url}/?variant=champion")
        page.get_by_label("Your movie review").fill(review)
        page.get_by_role("button", name="Submit").click()
        expect(page.locator("#result")).to_be_visible()
        note = page.locator("#domain-note")
        if flagged:
            score = ask(url, review, "champion")["domain"]["score"]
            expect(note).to_be_visible()
            expect(note).to_contain_text("unlike the movie reviews this model learned from")
            expect(note).to_contain_text(f"domain score {score:.2f}")
        else:
            expect(note).to_be_hidden()


def test_the_page_can_ask_one_variant_by_name(server, page):
    url, _ = server
    for name in ("challenger", "champion"):
        page.goto(f"{url}/?variant={name}")
        page.get_by_label("Your movie review").fill(REVIEW)
        page.get_by_role("button", name="Submit").click()
        expect(page.locator("#variant")).to_have_text(name)


def test_ctrl_enter_submits_from_the_keyboard_alone(server, page):
    url, _ = server
    page.goto(url)
    for _ in range(10):  # past the skip link and the navigation, into the review box
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "review":
            break
    assert page.evaluate("document.activeElement.id") == "review"
    page.keyboard.type("Dull, predictable and far too long. I do not recommend it.")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#result")).to_be_visible()
    expect(page.locator("#verdict")).to_have_text(re.compile("^(POSITIVE|NEGATIVE)$"))
    expect(page.get_by_role("status").first).to_contain_text("Verdict:")


def test_a_sample_review_is_one_click_away(server, page):
    url, _ = server
    page.goto(url)
    page.get_by_role("button", name="Try the sample: A pan").press("Enter")
    expect(page.locator("#result")).to_be_visible()
    expect(page.get_by_label("Your movie review")).to_have_value(
        re.compile("^What a waste of two hours")
    )


def test_an_empty_review_is_an_error_without_asking_the_server(server, page):
    url, _ = server
    page.goto(url)
    calls = []
    page.on(
        "request",
        lambda request: calls.append(request.url) if "invocations" in request.url else None,
    )
    page.get_by_label("Your movie review").fill("   \n ")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#error")).to_contain_text("Write a review first")
    expect(page.locator("#result")).to_be_hidden()
    assert calls == []


@pytest.mark.parametrize(
    ("status", "content_type", "body", "shown"),
    [
        (500, "application/json", json.dumps({"status": 500, "message": "the model fell over"}),
         "The endpoint answered 500: the model fell over"),
        (502, "text/html", "<html>Bad Gateway</html>", "The endpoint answered 502"),
        (200, "application/json", json.dumps({"predictions": []}), "could not be read"),
    ],
)  # fmt: skip
def test_a_server_error_is_shown_as_an_error_never_as_a_verdict(
    server, page, status, content_type, body, shown
):
    url, _ = server
    judge(page, url, REVIEW)  # a verdict first: the error must replace it
    page.route(
        "**/invocations*",
        lambda route: route.fulfill(status=status, content_type=content_type, body=body),
    )
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("alert")).to_contain_text(shown)
    expect(page.locator("#result")).to_be_hidden()
    expect(page.locator("#verdict")).to_be_hidden()


def test_busy_while_waiting_then_a_dead_server_is_an_error(trained_bundle, page, tmp_path):
    # Its own server, stopped half-way.
    with running_server(
        [
            "serve",
            "--variant",
            f"only={trained_bundle}",
            "--feedback-db",
            tmp_path / "feedback.sqlite",
        ]
    ) as server:
        page.goto(server.url)
        page.get_by_label("Your movie review").fill(REVIEW)
        # Every state the form passes through, recorded by the page itself: an answer that
        # comes back before a test could look (explain=true requests skip the batching wait)
        # still leaves its busy state on the record.
        page.evaluate(
            """() => {
                const form = document.getElementById('review-form');
                const submit = document.getElementById('submit');
                window.formStates = [];
                new MutationObserver(() => window.formStates.push(
                    [submit.disabled, submit.textContent, form.getAttribute('aria-busy')]
                )).observe(form, {attributes: true, childList: true, subtree: true,
                                  characterData: true});
            }"""
        )
        page.get_by_role("button", name="Submit").click()
        expect(page.locator("#result")).to_be_visible()
        assert [True, "Judging\u2026", "true"] in page.evaluate("window.formStates")
        expect(page.locator("#submit")).to_be_enabled()
        expect(page.locator("#submit")).to_have_text("Submit")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("alert")).to_contain_text("Could not reach the endpoint")
    expect(page.locator("#result")).to_be_hidden()


def test_a_review_holding_html_is_shown_as_text_and_never_run(server, page):
    url, _ = server
    review = (
        '<script>document.title = "pwned"</script>'
        "<img src=x onerror=\"document.title = 'pwned'\"> A superb film, I loved it."
    )
    judge(page, url, review)
    title = page.title()
    expect(page.locator("#highlighted")).to_have_text(review)
    assert page.locator("#highlighted script, #highlighted img").count() == 0
    assert page.locator("script:not([src])").count() == 0
    assert page.title() == title and "pwned" not in title


def test_feedback_is_stored_and_shows_in_the_summary_and_on_the_ab_page(server, page):
    url, feedback_db = server
    judge(page, url, REVIEW)
    variant = page.locator("#variant").inner_text()
    label = page.locator("#verdict").inner_text().lower()
    page.get_by_role("button", name="Wrong").click()
    expect(page.locator("#feedback-status")).to_have_text("Thank you: recorded as wrong.")
    expect(page.get_by_role("button", name="Wrong")).to_be_disabled()

    with sqlite3.connect(feedback_db) as connection:
        rows = connection.execute(
            "SELECT review, variant, model, label, feedback FROM feedback WHERE review = ?",
            (REVIEW,),
        ).fetchall()
    assert rows[-1] == (REVIEW, variant, "lstm", label, "wrong")

    with urllib.request.urlopen(f"{url}/api/feedback/summary", timeout=30) as response:
        summary = {entry["variant"]: entry for entry in json.load(response)["variants"]}
    mine = summary[variant]
    assert mine["wrong"] >= 1 and mine["feedback"] == mine["right"] + mine["wrong"]

    page.goto(f"{url}/ab?every=1")
    row = page.locator(f'tr[data-variant="{variant}"]')
    expect(row.get_by_role("link", name=variant)).to_have_attribute("href", f"/?variant={variant}")
    expect(row.locator("td.feedback")).to_have_text(str(mine["feedback"]))
    expect(row.locator("td.accuracy")).to_contain_text(f"{100 * mine['accuracy']:.1f}%")
    expect(row.locator("td.requests")).not_to_have_text("0")
    expect(row.locator("td.p50")).to_contain_text(" ms")

    # The view refreshes itself: feedback given elsewhere (on an answer asked elsewhere) shows
    # without a reload.
    asked = urllib.request.Request(
        f"{url}/invocations",
        data=b"ok",
        headers={"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": variant},
    )
    with urllib.request.urlopen(asked, timeout=30) as response:
        (prediction,) = json.load(response)["predictions"]
    vote = {"review": "ok", "variant": variant, "label": prediction["label"], "feedback": "right",
            "answer_id": prediction["id"]}  # fmt: skip
    request = urllib.request.Request(
        f"{url}/api/feedback",
        data=json.dumps(vote).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).close()
    expect(row.locator("td.feedback")).to_have_text(str(mine["feedback"] + 1))


def test_the_page_fits_a_phone_screen(server, browser):
    url, _ = server
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    page = context.new_page()
    try:
        judge(page, url, REVIEW)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        box = page.get_by_role("button", name="Right").bounding_box()
        assert box["height"] >= 40  # a finger can hit it
    finally:
        context.close()
