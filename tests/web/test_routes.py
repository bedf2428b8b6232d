"""The page's routes through TestClient: pages, assets, feedback API, A/B figures, errors."""

import sqlite3

import pytest
from fastapi.testclient import TestClient

from critic.endpoint import create_app
from critic.serving.feedback import FEEDBACK_FILE
from critic.serving.settings import ServerSettings
from critic.serving.variants import VariantSpec

GOOD = {"review": "A fine film.", "variant": "champion", "label": "positive", "feedback": "right"}


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
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert '<script src="/static/' in response.text


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
    response = client.post("/api/feedback", json={**GOOD, "probability": 0.9, "rating": 9})
    assert response.status_code == 201
    assert response.json()["variant"] == "champion"
    assert stored(feedback_db) == [("champion", "lstm", "positive", "right")]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({**GOOD, "feedback": "maybe"}, 422, "feedback"),
        ({**GOOD, "label": "neutral"}, 422, "label"),
        ({**GOOD, "review": "   "}, 422, "the review is empty"),
        ({**GOOD, "probability": 1.5}, 422, "probability"),
        ({**GOOD, "rating": 11}, 422, "rating"),
        ({k: v for k, v in GOOD.items() if k != "variant"}, 422, "variant"),
        ({**GOOD, "variant": "nobody"}, 400, "no variant 'nobody'"),
    ],
)
def test_bad_feedback_is_a_4xx_with_a_message_and_nothing_is_stored(
    client, feedback_db, body, status, message
):
    response = client.post("/api/feedback", json=body)
    assert response.status_code == status
    assert message in response.json()["message"]
    assert stored(feedback_db) == []


def test_feedback_that_is_not_json_or_too_large_is_refused(client, feedback_db):
    response = client.post(
        "/api/feedback", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "invalid feedback" in response.json()["message"]
    response = client.post("/api/feedback", json={**GOOD, "review": "x" * 300_000})
    assert response.status_code == 413
    assert stored(feedback_db) == []


def test_the_summary_gives_per_variant_accuracy_with_an_interval(client):
    for verdict in ("right", "right", "right", "wrong"):
        client.post("/api/feedback", json={**GOOD, "feedback": verdict})
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
    client.post("/api/feedback", json={**GOOD, "feedback": "wrong"})
    figures = client.get("/api/ab").json()
    assert figures["feedback_enabled"] is True
    by_name = {variant["name"]: variant for variant in figures["variants"]}
    champion, challenger = by_name["champion"], by_name["challenger"]
    assert champion["share"] == pytest.approx(0.75) and challenger["share"] == pytest.approx(0.25)
    assert (champion["requests"], champion["errors"], champion["reviews"]) == (3, 0, 3)
    assert champion["positive_share"] in (0.0, 1.0)  # the same review three times
    assert champion["latency_ms"]["window"] == 3
    assert 0 < champion["latency_ms"]["p50"] <= champion["latency_ms"]["p95"]
    assert champion["feedback"]["wrong"] == 1
    assert challenger["requests"] == 0 and challenger["latency_ms"]["p50"] is None


def test_feedback_lives_beside_the_first_bundle_by_default(trained_bundle, second_bundle, tmp_path):
    import shutil

    bundle = tmp_path / "runs" / "lstm"
    shutil.copytree(trained_bundle, bundle)
    app = create_app([VariantSpec("only", bundle)], ServerSettings())
    with TestClient(app) as client:
        assert client.post("/api/feedback", json={**GOOD, "variant": "only"}).status_code == 201
    assert (tmp_path / "runs" / FEEDBACK_FILE).exists()


def test_with_feedback_off_the_page_still_works_and_feedback_says_so(trained_bundle):
    app = create_app([VariantSpec("only", trained_bundle)], ServerSettings(feedback_db="off"))
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        response = client.post("/api/feedback", json={**GOOD, "variant": "only"})
        assert response.status_code == 503 and "off" in response.json()["message"]
        assert client.get("/api/ab").json()["feedback_enabled"] is False
