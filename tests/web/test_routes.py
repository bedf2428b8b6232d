"""The page's routes through TestClient: pages, assets, feedback API, A/B figures, errors."""

import re
import sqlite3

import pytest
from fastapi.testclient import TestClient

from critic.apps.endpoint import create_app
from critic.serving.ab.feedback import FEEDBACK_FILE
from critic.serving.settings import ServerSettings
from critic.serving.variants import VariantSpec

REVIEW = "A fine film."


def answer(client, variant: str = "champion", review: str = REVIEW) -> dict:
    """Feedback on a real answer of ``variant``: what the page sends after asking it."""
    response = client.post(
        "/invocations",
        content=review,
        headers={"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": variant},
    )
    assert response.status_code == 200
    (prediction,) = response.json()["predictions"]
    return {"review": review, "variant": variant, "label": prediction["label"],
            "feedback": "right", "answer_id": prediction["id"]}  # fmt: skip


def other(label: str) -> str:
    return "negative" if label == "positive" else "positive"


@pytest.fixture
def feedback_db(tmp_path):
    return tmp_path / "feedback.sqlite"


@pytest.fixture
def client(trained_bundle, second_bundle, feedback_db):
    specs = [
        VariantSpec("champion", trained_bundle, 3.0),
        VariantSpec("challenger", second_bundle, 1.0),
    ]
    app = create_app(specs, ServerSettings(seed=0, feedback_db=str(feedback_db)))
    with TestClient(app) as test_client:
        yield test_client


def stored(feedback_db):
    with sqlite3.connect(feedback_db) as connection:
        return connection.execute("SELECT variant, model, label, feedback FROM feedback").fetchall()


@pytest.mark.parametrize("path", ["/", "/ab"])
def test_the_pages_are_html_with_a_strict_content_security_policy(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and "unsafe" not in policy
    assert directives["frame-ancestors"] == "'none'"  # no page of another site may frame it
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    # The policy forbids inline script; the page must not need any.
    assert '<script src="/static/' in response.text
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text) is None
    assert re.search(r"\son[a-z]+\s*=", response.text) is None  # no onclick= handlers


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/static/app.js", "javascript"),
        ("/static/ab.js", "javascript"),
        ("/static/style.css", "css"),
    ],
)
def test_the_assets_are_served_with_their_types(client, path, kind):
    response = client.get(path)
    assert response.status_code == 200
    assert kind in response.headers["content-type"]


def test_a_missing_asset_is_a_json_404(client):
    response = client.get("/static/nothing.js")
    assert response.status_code == 404
    assert "message" in response.json()


def test_the_invocation_answer_names_the_variant_and_its_model(client):
    response = client.post(
        "/invocations?explain=true",
        json={"instances": ["A wonderful film"]},
        headers={"X-Amzn-SageMaker-Target-Variant": "challenger"},
    )
    body = response.json()
    assert (body["variant"], body["model"]) == ("challenger", "lstm")
    assert body["predictions"][0]["words"]


def test_feedback_is_stored_with_the_model_of_its_variant(client, feedback_db):
    vote = answer(client)
    response = client.post("/api/feedback", json={**vote, "probability": 0.9, "rating": 9})
    assert response.status_code == 201
    assert response.json()["variant"] == "champion"
    assert stored(feedback_db) == [("champion", "lstm", vote["label"], "right")]


def test_every_answer_carries_its_own_id_in_the_body_and_for_one_review_in_a_header(client):
    response = client.post("/invocations", content=REVIEW, headers={"Content-Type": "text/plain"})
    (prediction,) = response.json()["predictions"]
    assert response.headers["X-Critic-Answer-Id"] == prediction["id"]
    many = client.post("/invocations", json={"instances": [REVIEW, REVIEW, "Awful."]})
    ids = [p["id"] for p in many.json()["predictions"]]
    assert len({*ids, prediction["id"]}) == 4
    assert "X-Critic-Answer-Id" not in many.headers  # one id per review: they are in the body


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"feedback": "maybe"}, 422, "feedback"),
        ({"label": "neutral"}, 422, "label"),
        ({"review": "   "}, 422, "the review is empty"),
        ({"probability": 1.5}, 422, "probability"),
        ({"rating": 11}, 422, "rating"),
        ({"variant": None}, 422, "variant"),
        ({"answer_id": None}, 422, "answer_id"),
        ({"variant": "nobody"}, 400, "no variant 'nobody'"),
        ({"answer_id": "made.up"}, 403, "not an answer this endpoint gave"),
        ({"variant": "challenger"}, 403, "not an answer this endpoint gave"),
        ({"label": "flip"}, 403, "not an answer this endpoint gave"),
    ],
)
def test_bad_feedback_is_a_4xx_with_a_message_and_nothing_is_stored(
    client, feedback_db, change, status, message
):
    vote = answer(client)
    if change.get("label") == "flip":
        change = {"label": other(vote["label"])}
    body = {key: value for key, value in {**vote, **change}.items() if value is not None}
    response = client.post("/api/feedback", json=body)
    assert response.status_code == status
    assert message in response.json()["message"]
    assert stored(feedback_db) == []


def test_an_answer_gets_one_verdict_only(client, feedback_db):
    vote = answer(client)
    assert client.post("/api/feedback", json=vote).status_code == 201
    again = client.post("/api/feedback", json={**vote, "feedback": "wrong"})
    assert again.status_code == 409
    assert "already" in again.json()["message"]
    assert len(stored(feedback_db)) == 1


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Origin": "http://evil.example"}, "Origin 'http://evil.example'"),
        ({"Origin": "null"}, "Origin 'null'"),
        ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site is 'cross-site'"),
        ({"Sec-Fetch-Site": "same-site", "Origin": "http://testserver"}, "same-site"),
    ],
)
def test_feedback_from_another_site_is_refused(client, feedback_db, headers, why):
    response = client.post("/api/feedback", json=answer(client), headers=headers)
    assert response.status_code == 403
    assert why in response.json()["message"]
    assert stored(feedback_db) == []


def test_feedback_from_the_page_itself_or_from_no_browser_is_taken(client, feedback_db):
    same_origin = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/feedback", json=answer(client), headers=same_origin).status_code == 201
    assert client.post("/api/feedback", json=answer(client)).status_code == 201
    assert len(stored(feedback_db)) == 2


def test_feedback_must_be_json_so_that_a_browser_must_ask_first(client, feedback_db):
    import json

    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = client.post(
            "/api/feedback", content=json.dumps(answer(client)).encode(), headers=headers
        )
        assert response.status_code == 415
        assert "application/json" in response.json()["message"]
    assert stored(feedback_db) == []


def test_feedback_that_is_not_json_or_too_large_is_refused(client, feedback_db):
    response = client.post(
        "/api/feedback", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]
    response = client.post("/api/feedback", json={**answer(client), "review": "x" * 300_000})
    assert response.status_code == 413
    assert stored(feedback_db) == []


def test_the_summary_gives_per_variant_accuracy_with_an_interval(client):
    for verdict in ("right", "right", "right", "wrong"):
        client.post("/api/feedback", json={**answer(client), "feedback": verdict})
    summary = client.get("/api/feedback/summary").json()
    assert summary["confidence"] == 0.95
    by_variant = {entry["variant"]: entry for entry in summary["variants"]}
    assert set(by_variant) == {"champion", "challenger"}
    champion = by_variant["champion"]
    assert (champion["feedback"], champion["right"], champion["accuracy"]) == (4, 3, 0.75)
    low, high = champion["interval"]
    assert 0.25 < low < 0.75 < high < 1
    assert by_variant["challenger"]["feedback"] == 0


def test_the_ab_figures_follow_the_traffic(client):
    champion_only = {"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": "champion"}
    for _ in range(3):
        client.post("/invocations", content="Loved it", headers=champion_only)
    # Refused before any variant is chosen: counted apart, not against a model.
    assert client.post("/invocations", content="", headers=champion_only).status_code == 400
    client.post("/api/feedback", json={**answer(client, review="Loved it"), "feedback": "wrong"})
    figures = client.get("/api/ab").json()
    assert figures["feedback_enabled"] is True
    by_name = {variant["name"]: variant for variant in figures["variants"]}
    champion, challenger = by_name["champion"], by_name["challenger"]
    assert champion["share"] == pytest.approx(0.75) and challenger["share"] == pytest.approx(0.25)
    assert (champion["requests"], champion["errors"], champion["reviews"]) == (4, 0, 4)
    assert champion["positive_share"] in (0.0, 1.0)  # the same review four times
    assert champion["latency_ms"]["window"] == 4
    assert 0 < champion["latency_ms"]["p50"] <= champion["latency_ms"]["p95"]
    assert champion["feedback"]["wrong"] == 1
    assert challenger["requests"] == 0 and challenger["latency_ms"]["p50"] is None


def test_feedback_lives_beside_the_first_bundle_by_default(trained_bundle, second_bundle, tmp_path):
    import shutil

    bundle = tmp_path / "runs" / "lstm"
    shutil.copytree(trained_bundle, bundle)
    app = create_app([VariantSpec("only", bundle)], ServerSettings())
    with TestClient(app) as client:
        assert client.post("/api/feedback", json=answer(client, "only")).status_code == 201
    assert (tmp_path / "runs" / FEEDBACK_FILE).exists()


def test_with_feedback_off_the_page_still_works_and_feedback_says_so(trained_bundle):
    app = create_app([VariantSpec("only", trained_bundle)], ServerSettings(feedback_db="off"))
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        response = client.post("/api/feedback", json=answer(client, "only"))
        assert response.status_code == 503 and "off" in response.json()["message"]
        assert client.get("/api/ab").json()["feedback_enabled"] is False
