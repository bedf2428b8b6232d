"""The A/B view's decision in a real browser (Debian's chromium, as tests/web/test_browser.py):
the verdict, the interval and the votes still needed from the feedback file, and the promote
click that shifts the weights through /admin/weights.

``CRITIC_AB_SCREENSHOT=docs/ab.png`` also saves the decided view as a picture (the README's).
"""

import json
import os
import urllib.request

import pytest
from playwright.sync_api import expect

from support.feedback import seed
from support.servers import running_server

TOKEN = "browser-admin-token"


@pytest.fixture(scope="module")
def server(trained_bundle, second_bundle, tmp_path_factory):
    feedback_db = tmp_path_factory.mktemp("ab") / "feedback.sqlite"
    seed(feedback_db, {"champion": 0.6, "challenger": 0.6}, votes_each=0)  # the schema
    with running_server(
        ["serve", "--variant", f"champion={trained_bundle}:1",
         "--variant", f"challenger={second_bundle}:1", "--feedback-db", feedback_db,
         "--admin-token", TOKEN]
    ) as server:  # fmt: skip
        yield server.url, feedback_db


def weights_now(url) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/variants", timeout=30) as response:
        return {v["name"]: v["weight"] for v in json.load(response)["variants"]}


@pytest.fixture
def equal_weights(server):
    url, _ = server
    yield
    request = urllib.request.Request(
        f"{url}/admin/weights",
        data=json.dumps({"champion": 1, "challenger": 1}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    urllib.request.urlopen(request, timeout=30).close()


def test_with_few_votes_the_view_says_keep_testing_and_how_many_votes_are_still_needed(
    server, page
):
    url, feedback_db = server
    seed(feedback_db, {"champion": 0.5, "challenger": 0.6}, votes_each=10)
    page.goto(f"{url}/ab?every=1")
    card = page.locator('article.challenger[data-challenger="challenger"]')
    expect(card.locator(".ab-verdict")).to_have_text("keep testing")
    expect(card.locator("dd.interval")).to_have_text("from 20 votes each")
    # Pooled 55%, 5 points, 80% power: 1,553 per variant; 10 are in.
    expect(card.locator("dd.votes-needed")).to_contain_text("1543 per variant (1553 to find 5.0")
    # A larger difference worth finding needs fewer votes: the textbook 388 at 10 points.
    page.get_by_label("Smallest difference worth finding").fill("10")
    page.get_by_label("Smallest difference worth finding").dispatch_event("change")
    expect(card.locator("dd.votes-needed")).to_contain_text("378 per variant (388 to find 10.0")
    expect(page.locator("#method")).to_contain_text("mSPRT")
    expect(page.locator("#assumes")).to_contain_text("independent")
    # A local endpoint has no SageMaker figures (GET /api/ab/sagemaker is 404): no section.
    expect(page.locator("#sagemaker")).to_be_hidden()


def test_a_decided_test_is_shown_and_one_click_promotes_the_winner(server, page, equal_weights):
    url, feedback_db = server
    seed(feedback_db, {"champion": 0.6, "challenger": 0.9}, votes_each=200)
    for _ in range(3):  # some traffic for the table
        urllib.request.urlopen(
            urllib.request.Request(f"{url}/invocations", data=b"A fine film.",
                                   headers={"Content-Type": "text/plain"}), timeout=30,
        ).close()  # fmt: skip
    page.goto(f"{url}/ab?every=1")
    card = page.locator('article.challenger[data-challenger="challenger"]')
    expect(card.locator(".ab-verdict")).to_have_text("challenger better")
    expect(card.locator("dd.difference")).to_have_text("+30.0 points")
    expect(card.locator("dd.interval")).to_contain_text(" to +")
    expect(page.locator("#champion")).to_have_text("champion")
    # The form offers the winner.
    expect(page.get_by_label("Variant", exact=True)).to_have_value("challenger")
    if os.environ.get("CRITIC_AB_SCREENSHOT"):
        page.screenshot(path=os.environ["CRITIC_AB_SCREENSHOT"], full_page=True)

    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Promote").click()
    expect(page.locator("#promote-status")).to_have_text(
        "Promoted challenger. Traffic now: champion 0%, challenger 100%."
    )
    assert weights_now(url) == {"champion": 0.0, "challenger": 1.0}
    # The challenger now carries the traffic: it is the champion, and the verdict turns round.
    expect(page.locator("#champion")).to_have_text("challenger")
    expect(page.locator('article.challenger[data-challenger="champion"] .ab-verdict')).to_have_text(
        "champion better"
    )


def test_a_split_can_be_promoted_and_a_wrong_token_changes_nothing(server, page, equal_weights):
    url, feedback_db = server
    seed(feedback_db, {"champion": 0.6, "challenger": 0.9}, votes_each=200)
    page.goto(f"{url}/ab?every=1")
    expect(page.get_by_label("Variant", exact=True)).to_have_value("challenger")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Promote").click()
    expect(page.locator("#promote-status")).to_contain_text("Not promoted: a valid")
    assert weights_now(url) == {"champion": 1.0, "challenger": 1.0}

    page.get_by_label("Its share of the traffic").fill("80")
    page.get_by_label("Admin token").fill(TOKEN)
    page.get_by_role("button", name="Promote").click()
    expect(page.locator("#promote-status")).to_contain_text("challenger 80%")
    assert weights_now(url) == pytest.approx({"champion": 0.2, "challenger": 0.8})


@pytest.fixture(scope="module")
def three_variants(trained_bundle, second_bundle, nbsvm_bundle, tmp_path_factory):
    feedback_db = tmp_path_factory.mktemp("ab3") / "feedback.sqlite"
    seed(feedback_db, {"champion": 0.6, "challenger": 0.9, "third": 0.6}, votes_each=0)
    with running_server(
        ["serve", "--variant", f"champion={trained_bundle}:1",
         "--variant", f"challenger={second_bundle}:1", "--variant", f"third={nbsvm_bundle}:1",
         "--feedback-db", feedback_db]
    ) as server:  # fmt: skip
        yield server.url, feedback_db


def test_a_sample_ratio_mismatch_is_shown_and_several_challengers_share_one_alpha(
    three_variants, page
):
    url, feedback_db = three_variants
    seed(feedback_db, {"champion": 0.6, "challenger": 0.9, "third": 0.6}, votes_each=200)
    # A client naming the challenger for every request: each variant was due a third.
    for _ in range(90):
        urllib.request.urlopen(
            urllib.request.Request(
                f"{url}/invocations", data=b"A fine film.",
                headers={"Content-Type": "text/plain",
                         "X-Amzn-SageMaker-Target-Variant": "challenger"},
            ), timeout=30,
        ).close()  # fmt: skip
    with urllib.request.urlopen(f"{url}/api/ab/decision", timeout=30) as response:
        decision = json.load(response)
    ratio = decision["sample_ratio"]["requests"]
    assert ratio["observed"] == {"champion": 0, "challenger": 90, "third": 0}
    assert ratio["expected"] == {"champion": 30.0, "challenger": 30.0, "third": 30.0}
    assert decision["correction"] == "holm" and decision["comparisons"] == 2

    page.goto(f"{url}/ab?every=1")
    warning = page.locator("#srm-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("This comparison cannot be trusted")
    expect(warning).to_contain_text("share of the requests is not what its weights imply")
    card = page.locator('article.challenger[data-challenger="challenger"]')
    expect(card.locator(".ab-verdict")).to_have_text("challenger better")
    expect(card).to_contain_text("not to be trusted")
    by_name = {entry["challenger"]: entry for entry in decision["challengers"]}
    adjusted = by_name["challenger"]["adjusted_p_value"]
    assert adjusted >= by_name["challenger"]["p_value"]
    expect(card.locator("dt", has_text="Adjusted for 2 comparisons (Holm)")).to_be_visible()
    expect(card.locator("dd.adjusted-p-value")).to_have_text(f"{adjusted:.2g}".replace("e-0", "e-"))
    expect(page.locator("#sample-ratio")).to_contain_text("chi-square")
    # An untrusted winner is not offered for promotion: the form keeps the champion.
    expect(page.get_by_label("Variant", exact=True)).to_have_value("champion")
    if os.environ.get("CRITIC_AB_SRM_SCREENSHOT"):
        page.screenshot(path=os.environ["CRITIC_AB_SRM_SCREENSHOT"], full_page=True)


def test_a_shadow_is_decided_on_the_champions_votes_and_shown_with_its_reason(
    trained_bundle, nbsvm_bundle, tmp_path, page
):
    from critic.serving.ab.feedback import FeedbackStore

    feedback_db = tmp_path / "feedback.sqlite"
    store = FeedbackStore(feedback_db)
    # 300 voted champion answers: where they disagree (60), the shadow was right on 45.
    rows = []
    for index in range(300):
        disagree, shadow_wins = index % 5 == 0, index % 20 != 0
        live_right = not (disagree and shadow_wins)
        shadow_label = "negative" if disagree else "positive"
        store.record(review=f"r{index}", variant="AllTraffic", label="positive",
                     feedback="right" if live_right else "wrong", answer_id=f"id{index}",
                     share=1.0)  # fmt: skip
        rows.append((f"id{index}", "candidate", shadow_label))
    store.add_shadow_answers(rows)
    with running_server(
        ["serve", trained_bundle, "--shadow", f"candidate={nbsvm_bundle}",
         "--feedback-db", feedback_db, "--admin-token", TOKEN]
    ) as server:  # fmt: skip
        page.goto(f"{server.url}/ab?every=1")
        card = page.locator('article.shadow-decision[data-shadow="candidate"]')
        expect(card.locator(".ab-verdict")).to_have_text("shadow better")
        expect(card.locator("dd.disagreements")).to_have_text(
            "candidate right 45, AllTraffic right 15"
        )
        expect(card.locator("dd.difference")).to_have_text("+10.0 points")
        expect(page.locator("#paired-method")).to_contain_text("beta-binomial")
        # Promoted on that evidence: a live variant, without a restart.
        page.get_by_label("Admin token").fill(TOKEN)
        card.get_by_role("button", name="Make candidate a live variant").click()
        expect(page.locator("#promote-status")).to_have_text(
            "candidate is a live variant (paired verdict: shadow better, +10.0 points on 300 "
            "voted reviews). Traffic now: AllTraffic 50%, candidate 50%."
        )
        assert weights_now(server.url) == {"AllTraffic": 1.0, "candidate": 1.0}
        expect(page.locator("#variants")).to_contain_text("nbsvm")
