"""The A/B view's shadow section in a real browser, against `critic serve --shadow`."""

import json
import re
import urllib.request

import pytest
from playwright.sync_api import expect

from critic.data.prepare import load_splits
from critic.inference.predictor import Predictor
from support.servers import running_server


@pytest.fixture(scope="module")
def disagreeing(trained_bundle, nbsvm_bundle):
    """Held-out reviews, and which of them the live model and the shadow label differently
    (each under 300 characters: the A/B view shows a disagreement's first 300)."""
    config = Predictor.load(trained_bundle).bundle.config
    reviews = [text[:250] for text in load_splits(config.data)["test"].texts[:30]]
    live = Predictor.load(trained_bundle).predict(reviews)
    shadow = Predictor.load(nbsvm_bundle).predict(reviews)
    differ = [r for r, a, b in zip(reviews, live, shadow, strict=True) if a["label"] != b["label"]]
    assert differ, "the two small models agree on every review: pick other reviews"
    return reviews, differ


@pytest.fixture(scope="module")
def shadowed_server(trained_bundle, nbsvm_bundle, tmp_path_factory):
    feedback_db = tmp_path_factory.mktemp("shadow-web") / "feedback.sqlite"
    with running_server(
        ["serve", "--variant", f"champion={trained_bundle}", "--feedback-db", feedback_db,
         # A queue long enough that no copy is dropped: every review is compared.
         "--shadow", f"candidate={nbsvm_bundle}", "--shadow-duty", "1", "--shadow-queue", "1000"]
    ) as server:  # fmt: skip
        yield server.url


def post(url, reviews):
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(reviews).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=30).close()


def test_the_ab_view_shows_each_shadows_agreement_and_its_disagreements(
    shadowed_server, disagreeing, page
):
    reviews, differ = disagreeing
    for start in range(0, len(reviews), 5):
        post(shadowed_server, reviews[start : start + 5])
    page.goto(f"{shadowed_server}/ab?every=1")
    section = page.locator("#shadows")
    expect(section).to_be_visible()
    row = page.locator('#shadow-rows tr[data-shadow="candidate"]')
    expect(row.locator(".copies")).to_have_text("6")
    expect(row.locator(".dropped")).to_have_text("0")
    expect(row.locator(".agreement")).to_contain_text(f"of {len(reviews)} reviews")
    share = (len(reviews) - len(differ)) / len(reviews)
    expect(row.locator(".agreement")).to_contain_text(f"{share * 100:.1f}%")
    items = page.locator("#disagreements li")
    expect(items).to_have_count(len(differ))
    expect(page.locator("#no-disagreements")).to_be_hidden()
    shown = {text.strip('"“”') for text in items.locator("q").all_inner_texts()}
    assert shown == set(differ)
    expect(items.first.locator(".answer")).to_have_count(2)


def test_without_shadows_the_section_stays_hidden(trained_bundle, page, tmp_path):
    with running_server(
        ["serve", "--variant", f"champion={trained_bundle}", "--feedback-db", tmp_path / "f.sqlite"]
    ) as server:
        page.goto(f"{server.url}/ab?every=1")
        expect(page.locator("#rows tr")).to_have_count(1)
        # Refreshed twice at least: shadows.js has seen the (empty) list of shadows.
        expect(page.locator("body")).to_have_attribute(
            "data-shadows-refreshed", re.compile(r"^([2-9]|\d\d+)$")
        )
        expect(page.locator("#shadows")).to_be_hidden()
