"""The page in a real browser in front of a SageMaker endpoint: `critic web --sagemaker-endpoint`
whose InvokeEndpoint calls reach a local `critic serve` through boto3's endpoint_url, and whose
DescribeEndpoint reaches moto's server (the endpoint's variants and weights)."""

import re
import sqlite3

import pytest
from playwright.sync_api import expect

from support.aws import moto_endpoint, remove_moto_endpoint
from support.browser import REVIEW, ask, judge
from support.cli import run_cli
from support.servers import free_port, running_server

ENDPOINT = "critic-web"


def page_server(endpoint, endpoint_url, feedback_db):
    """`critic web` in front of ``endpoint``, its runtime calls sent to ``endpoint_url``: the
    running_server of it."""
    return running_server(
        ["web", "--sagemaker-endpoint", endpoint, "--endpoint-url", endpoint_url,
         "--feedback-db", feedback_db]
    )  # fmt: skip


def model_server(*variants, endpoint_name):
    """`critic serve` of ``variants`` (NAME=BUNDLE[:WEIGHT]), as SageMaker's runtime would
    answer for ``endpoint_name``: the running_server of it."""
    return running_server(
        ["serve", *[arg for variant in variants for arg in ("--variant", variant)],
         "--feedback-db", "off", "--endpoint-name", endpoint_name]
    )  # fmt: skip


@pytest.fixture(scope="module")
def served(moto_url, trained_bundle, second_bundle, tmp_path_factory):
    """The model server (as SageMaker's runtime) and the page in front of it."""
    moto_endpoint(ENDPOINT, [("champion", 1.0), ("challenger", 1.0)])
    feedback_db = tmp_path_factory.mktemp("sagemaker-web") / "feedback.sqlite"
    try:
        with (
            model_server(
                f"champion={trained_bundle}:1", f"challenger={second_bundle}:1",
                endpoint_name=ENDPOINT,
            ) as model,
            page_server(ENDPOINT, model.url, feedback_db) as front,
        ):  # fmt: skip
            yield front.url, model.url, feedback_db
    finally:
        remove_moto_endpoint(ENDPOINT, ["champion", "challenger"])


def test_the_endpoint_answers_the_page_with_its_verdict_variant_and_words(served, page):
    page_url, model_url, _ = served
    judge(page, page_url, REVIEW)
    variant = page.locator("#variant").inner_text()
    assert variant in ("champion", "challenger")
    truth = ask(model_url, REVIEW, variant)  # what the model server itself answers
    expect(page.locator("#verdict")).to_have_text(truth["label"].upper())
    expect(page.locator("#rating")).to_have_text(str(truth["rating"]))
    sure = round(100 * max(truth["score"], 1 - truth["score"]))
    expect(page.locator("#confidence")).to_have_text(f"{sure}% sure it is {truth['label']}")
    expect(page.locator("#model")).to_have_text("lstm")
    assert page.locator("#highlighted mark.word").count() >= 1  # explain reached the model


def test_the_page_can_ask_one_variant_of_the_endpoint_by_name(served, page):
    page_url, _, _ = served
    for name in ("challenger", "champion"):
        page.goto(f"{page_url}/?variant={name}")
        page.get_by_label("Your movie review").fill(REVIEW)
        page.get_by_role("button", name="Submit").click()
        expect(page.locator("#variant")).to_have_text(name)


def test_feedback_is_kept_by_the_page_and_the_ab_view_shows_the_endpoints_weights(served, page):
    page_url, _, feedback_db = served
    judge(page, page_url, REVIEW)
    variant = page.locator("#variant").inner_text()
    label = page.locator("#verdict").inner_text().lower()
    page.get_by_role("button", name="Right").click()
    expect(page.locator("#feedback-status")).to_have_text("Thank you: recorded as right.")
    with sqlite3.connect(feedback_db) as connection:
        rows = connection.execute("SELECT variant, model, label, feedback FROM feedback").fetchall()
    assert (variant, "lstm", label, "right") in rows

    page.goto(f"{page_url}/ab?every=1")
    expect(page.locator("#endpoint")).to_have_text(ENDPOINT)
    row = page.locator(f'tr[data-variant="{variant}"]')
    expect(row.locator("td.share")).to_have_text("50.0% (weight 1)")  # DescribeEndpoint's
    expect(row.locator("td.requests")).not_to_have_text("0")
    expect(row.locator("td.feedback")).not_to_have_text("0")


FIGURES = {  # what GET /api/ab/sagemaker answers (tests/apps/test_sagemaker_web.py)
    "source": "CloudWatch AWS/SageMaker",
    "endpoint": ENDPOINT,
    "period": {"start": "2026-12-03T07:00:00+00:00", "end": "2026-12-03T10:00:00+00:00",
               "hours": 3.0},
    "variants": {
        "champion": {"invocations": 1280, "errors_4xx": 3.0, "errors_5xx": 1.0,
                     "latency_ms": {"mean": 2.0, "p95": 4.1}},
        "challenger": {"invocations": 0, "errors_4xx": None, "errors_5xx": None,
                       "latency_ms": {"mean": None, "p95": None}},
    },
}  # fmt: skip


def test_the_ab_view_shows_what_sagemaker_measured_beside_its_own_figures(served, page):
    page_url, _, _ = served
    # moto's CloudWatch holds no SageMaker metrics: each variant's row says so with dashes.
    page.goto(f"{page_url}/ab?every=1")
    expect(page.locator("#sagemaker")).to_be_visible()
    expect(page.locator("#sagemaker-period")).to_contain_text("CloudWatch AWS/SageMaker")
    for name in ("champion", "challenger"):
        row = page.locator(f'#sagemaker-rows tr[data-variant="{name}"]')
        expect(row.locator("td")).to_have_text(["–"] * 5)
    # CloudWatch's answer, as the server gives it, drawn as a table.
    page.route(
        "**/api/ab/sagemaker*",
        lambda route: route.fulfill(json=FIGURES),
    )
    page.goto(f"{page_url}/ab?every=1")
    expect(page.locator("#sagemaker-error")).to_be_hidden()
    expect(page.locator("#sagemaker-period")).to_contain_text("the last 3 hours")
    champion = page.locator('#sagemaker-rows tr[data-variant="champion"]')
    expect(champion.locator("td")).to_have_text(["1,280", "3", "1", "2 ms", "4.1 ms"])
    idle = page.locator('#sagemaker-rows tr[data-variant="challenger"]')
    expect(idle.locator("td")).to_have_text(["0", "–", "–", "–", "–"])


def test_an_endpoint_that_does_not_exist_is_an_error_on_the_page_not_a_verdict(
    served, page, tmp_path
):
    _, model_url, _ = served
    with page_server("critic-elsewhere", model_url, tmp_path / "feedback.sqlite") as front:
        page.goto(front.url)
        page.get_by_label("Your movie review").fill(REVIEW)
        page.get_by_role("button", name="Submit").click()
        expect(page.get_by_role("alert")).to_contain_text(
            re.compile(r"The endpoint answered 4\d\d: .*Endpoint critic-elsewhere not found")
        )
        expect(page.locator("#result")).to_be_hidden()


def test_an_endpoint_it_may_not_describe_is_learnt_then_dying_it_is_an_error_not_a_verdict(
    moto_url, trained_bundle, page, tmp_path
):
    # No "critic-mortal" in the control plane: like a role allowed InvokeEndpoint alone.
    with (
        model_server(f"only={trained_bundle}", endpoint_name="critic-mortal") as model,
        page_server("critic-mortal", model.url, tmp_path / "feedback.sqlite") as front,
    ):
        url = front.url
        judge(page, url, REVIEW)
        expect(page.locator("#variant")).to_have_text("only")
        page.goto(f"{url}/ab?every=1")
        row = page.locator('tr[data-variant="only"]')
        expect(row.locator("td.share")).to_have_text("\u2014 (weight unknown)")
        expect(row.locator("td.requests")).to_have_text("1")

        model.stop()
        page.goto(url)
        page.get_by_label("Your movie review").fill(REVIEW)
        page.get_by_role("button", name="Submit").click()
        expect(page.get_by_role("alert")).to_contain_text(
            re.compile(r"The endpoint answered 502: .*critic-mortal")
        )
        expect(page.locator("#result")).to_be_hidden()
        expect(page.locator("#verdict")).to_be_hidden()


def test_the_page_server_needs_an_endpoint_name(moto_url):
    completed = run_cli("web", "--port", free_port(), timeout=60)
    assert completed.returncode == 1
    assert completed.stderr.strip() == (
        "critic: error: critic web needs --sagemaker-endpoint NAME: the endpoint to ask"
    )
