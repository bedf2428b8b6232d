"""The endpoint through FastAPI's TestClient: every route and every error path."""

import json
import os
import re
import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from critic.apps.endpoint import create_app
from critic.inference.predictor import Predictor
from critic.serving.settings import ServerSettings
from critic.serving.variants import VariantSpec

TOKEN = "s3cret-admin-token"
REVIEWS = [
    "A wonderful, moving film!",
    "Not good. Boring and far too long.",
    "It was fine, I guess?",
]


@pytest.fixture(scope="module")
def client(trained_bundle, second_bundle):
    specs = [
        VariantSpec("champion", trained_bundle, 0.9),
        VariantSpec("challenger", second_bundle, 0.1),
    ]
    app = create_app(
        specs, ServerSettings(admin_token=TOKEN, max_reviews=50, seed=0, endpoint_name="reviews")
    )
    with TestClient(app) as test_client:
        yield test_client


def test_ping_is_200_once_the_app_has_started(client):
    # The models load in the app's lifespan, before it takes its first request (uvicorn
    # listens only once the lifespan has started; TestClient sends nothing before): no client
    # can see the 503 /ping gives while they load, so only the 200 after is checked.
    assert client.get("/ping").status_code == 200


def test_a_plain_text_review_gets_a_json_prediction_and_names_its_variant(client, trained_bundle):
    response = client.post(
        "/invocations",
        content=REVIEWS[0],
        headers={"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": "champion"},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["variant"] == "champion"
    assert response.headers["x-Amzn-Invoked-Production-Variant"] == "champion"
    expected = Predictor.load(trained_bundle).predict(REVIEWS[0])
    (served,) = body["predictions"]
    assert served["label"] == expected["label"]
    assert served["probability"] == pytest.approx(expected["probability"], abs=1e-6)


def test_json_csv_and_jsonlines_requests_answer_every_review_in_order(client):
    for content_type, body in [
        ("application/json", json.dumps({"instances": REVIEWS})),
        ("text/csv", "\n".join(json.dumps(r) for r in REVIEWS)),
        ("application/jsonlines", "\n".join(json.dumps(r) for r in REVIEWS)),
    ]:
        response = client.post(
            "/invocations",
            content=body,
            headers={"Content-Type": content_type, "X-Amzn-SageMaker-Target-Variant": "champion"},
        )
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 3


def test_accept_text_plain_answers_one_or_zero_per_review(client):
    response = client.post(
        "/invocations",
        content=json.dumps(REVIEWS[:2]),
        headers={
            "Content-Type": "application/json",
            "Accept": "text/plain",
            "X-Amzn-SageMaker-Target-Variant": "champion",
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert set(response.text.split("\n")) <= {"0", "1"} and len(response.text.split("\n")) == 2


@pytest.mark.parametrize(
    ("content", "headers", "status", "message"),
    [
        ("x", {"Content-Type": "application/xml"}, 415, "supported Content-Types"),
        ("x", {"Content-Type": "text/plain", "Accept": "image/png"}, 415, "supported Accept types"),
        ("{oops", {"Content-Type": "application/json"}, 400, "not valid JSON"),
        (b"\xff\xfe", {"Content-Type": "text/plain"}, 400, "not valid UTF-8"),
        ("   ", {"Content-Type": "text/plain"}, 400, "empty"),
        (json.dumps(["ok"] * 51), {"Content-Type": "application/json"}, 413, "the most is 50"),
        (
            "x",
            {"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": "nobody"},
            400,
            "no variant 'nobody'",
        ),
    ],
)
def test_client_mistakes_are_4xx_with_a_json_message(client, content, headers, status, message):
    response = client.post("/invocations", content=content, headers=headers)
    assert response.status_code == status
    assert message in response.json()["message"]


def test_a_body_over_six_megabytes_is_413(client):
    response = client.post(
        "/invocations",
        content=b"a" * (6 * 1024 * 1024 + 10),
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 413
    assert "6 MB" in response.json()["message"]


def test_the_runtime_api_path_answers_for_its_endpoint_name_only(client):
    ok = client.post(
        "/endpoints/reviews/invocations", content="Great!", headers={"Content-Type": "text/plain"}
    )
    assert ok.status_code == 200
    wrong = client.post(
        "/endpoints/other/invocations", content="Great!", headers={"Content-Type": "text/plain"}
    )
    assert wrong.status_code == 400 and "Endpoint other not found" in wrong.json()["message"]


def test_custom_attributes_are_echoed(client):
    response = client.post(
        "/invocations",
        content="Great!",
        headers={"Content-Type": "text/plain", "X-Amzn-SageMaker-Custom-Attributes": "trace=abc"},
    )
    assert response.headers["X-Amzn-SageMaker-Custom-Attributes"] == "trace=abc"


def test_unknown_routes_and_methods_answer_json(client):
    assert client.get("/nowhere").json()["message"] == "Not Found"
    assert client.get("/invocations").status_code == 405


def test_weights_change_at_run_time_only_with_the_admin_token(client):
    assert client.post("/admin/weights", json={"champion": 0.0}).status_code == 401
    bad = client.post(
        "/admin/weights", json={"champion": 0.0}, headers={"Authorization": "Bearer wrong-token"}
    )
    assert bad.status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/admin/weights", json={"ghost": 1.0}, headers=auth).status_code == 400
    assert client.post("/admin/weights", content="{", headers=auth).status_code == 400
    sagemaker_shape = {
        "DesiredWeightsAndCapacities": [{"VariantName": "champion", "DesiredWeight": 0.0}]
    }
    changed = client.post("/admin/weights", json=sagemaker_shape, headers=auth)
    assert changed.status_code == 200 and changed.json()["shares"]["challenger"] == 1.0
    variants = {
        r.headers["x-Amzn-Invoked-Production-Variant"]
        for r in (
            client.post("/invocations", content="Hi there", headers={"Content-Type": "text/plain"})
            for _ in range(20)
        )
    }
    assert variants == {"challenger"}
    restored = client.post(
        "/admin/weights", json={"champion": 0.9, "challenger": 0.1}, headers=auth
    )
    assert restored.json()["weights"] == {"champion": 0.9, "challenger": 0.1}
    assert client.get("/variants").json()["variants"][0]["weight"] == 0.9


def test_admin_is_off_without_a_token(trained_bundle):
    app = create_app([VariantSpec("only", trained_bundle)], ServerSettings())
    with TestClient(app) as plain:
        response = plain.post(
            "/admin/weights",
            json={"only": 1.0},
            headers={"Authorization": "Bearer anything-at-all"},
        )
    assert response.status_code == 403


def read_metrics(client) -> dict[tuple[str, frozenset], float]:
    """Every sample /metrics shows, as (sample name, labels) -> value."""
    families = text_string_to_metric_families(client.get("/metrics").text)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }


def test_metrics_count_requests_errors_latency_and_labels_per_variant(client):
    # The module's client is shared: count what this test sends, not what the series hold.
    before = read_metrics(client)
    answered = {
        "champion": client.post(
            "/invocations",
            json={"instances": REVIEWS[:2]},
            headers={"X-Amzn-SageMaker-Target-Variant": "champion"},
        ),
        "challenger": client.post(
            "/invocations",
            content="Lovely!",
            headers={"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": "challenger"},
        ),
    }
    refused = client.post("/invocations", content="x", headers={"Content-Type": "image/png"})
    after = read_metrics(client)

    def added(sample: str, **labels: str) -> float:
        key = (sample, frozenset(labels.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert [response.status_code for response in answered.values()] == [200, 200]
    assert refused.status_code == 415
    for variant in ("champion", "challenger"):
        assert added("critic_requests_total", variant=variant, status="200") == 1
        assert added("critic_request_latency_seconds_count", variant=variant) == 1
        assert added("critic_request_latency_seconds_bucket", variant=variant, le="+Inf") == 1
        labels = Counter(p["label"] for p in answered[variant].json()["predictions"])
        for label in ("positive", "negative"):
            assert added("critic_predictions_total", variant=variant, label=label) == labels[label]
    assert added("critic_requests_total", variant="none", status="415") == 1
    assert added("critic_request_errors_total", variant="none", status="415") == 1
    assert added("critic_request_latency_seconds_count", variant="none") == 1
    errors = [key for key in after if key[0] == "critic_request_errors_total"]
    assert sum(added(name, **dict(labels)) for name, labels in errors) == 1  # the 415 alone
    # One forward pass per request (nothing else was waiting to share it), of its reviews.
    assert added("critic_batch_reviews_count", variant="champion") == 1
    assert added("critic_batch_reviews_sum", variant="champion") == 2
    assert added("critic_batch_reviews_count", variant="challenger") == 1
    assert added("critic_batch_reviews_sum", variant="challenger") == 1
    weights = {v["name"]: v["weight"] for v in client.get("/variants").json()["variants"]}
    for variant, weight in weights.items():
        assert after[("critic_variant_weight", frozenset({("variant", variant)}))] == weight


def test_explain_adds_word_weights_by_query_or_custom_attribute(client):
    headers = {"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": "champion"}
    plain = client.post("/invocations", content="A clever film.", headers=headers).json()
    assert "words" not in plain["predictions"][0]
    by_query = client.post(
        "/invocations?explain=true", content="A clever film.", headers=headers
    ).json()
    assert [w["word"] for w in by_query["predictions"][0]["words"]] == ["a", "clever", "film"]
    by_attribute = client.post(
        "/invocations",
        content="A clever film.",
        headers={**headers, "X-Amzn-SageMaker-Custom-Attributes": "trace=1;explain=true"},
    ).json()
    assert by_attribute["predictions"][0]["words"] == by_query["predictions"][0]["words"]
    assert by_query["predictions"][0]["probability"] == pytest.approx(
        plain["predictions"][0]["probability"], abs=1e-6
    )


@pytest.mark.parametrize(
    ("query", "attributes"), [("?explain=ture", None), ("", "trace=1;explain=maybe")]
)
def test_an_explain_that_is_neither_true_nor_false_is_refused(client, query, attributes):
    headers = {"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": "champion"}
    if attributes:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes
    response = client.post(f"/invocations{query}", content="A clever film.", headers=headers)
    assert response.status_code == 400
    assert response.json()["message"].startswith("explain must be true or false, got ")


@pytest.mark.parametrize(
    ("attributes", "status"),
    [("a" * 1024, 200), ("k=v;" * 256, 200), ("a" * 1025, 400), ("caf\u00e9", 400),
     ("tab\there", 400)],
)  # fmt: skip
def test_custom_attributes_follow_sagemakers_limits(client, attributes, status):
    response = client.post(
        "/invocations",
        content="A good film.",
        headers={"Content-Type": "text/plain",
                 "X-Amzn-SageMaker-Custom-Attributes": attributes.encode("latin-1")},
    )  # fmt: skip
    assert response.status_code == status
    if status == 200:
        assert response.headers["X-Amzn-SageMaker-Custom-Attributes"] == attributes
    else:
        assert "X-Amzn-SageMaker-Custom-Attributes" in response.json()["message"]


@pytest.mark.parametrize("target", ["bad name!", "-champion", "x" * 64, "under_score"])
def test_a_target_variant_must_follow_sagemakers_name_rule(client, target):
    response = client.post(
        "/invocations",
        content="A good film.",
        headers={"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": target},
    )
    assert response.status_code == 400
    assert "not valid for SageMaker" in response.json()["message"]


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN[:-1], "Bearer "]
)
def test_a_wrong_or_missing_admin_token_leaves_the_weights_unchanged(client, authorization):
    before = client.get("/variants").json()["variants"]
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post(
        "/admin/weights", json={"champion": 0.0, "challenger": 1.0}, headers=headers
    )
    assert response.status_code == 401
    assert client.get("/variants").json()["variants"] == before


def test_the_endpoint_measures_both_backends_for_the_lstm_says_so_and_answers_the_same(
    trained_bundle, caplog
):
    from critic.inference.onnx import MeasuredScorer

    answers = {}
    for backend in ("auto", "torch"):
        app = create_app([VariantSpec("only", trained_bundle)], ServerSettings(backend=backend))
        with caplog.at_level("WARNING", logger="uvicorn.error"), TestClient(app) as plain:
            (variant,) = app.state.endpoint.router.variants.values()
            measured = isinstance(variant.predictor.scorer, MeasuredScorer)
            assert measured == (backend == "auto")
            answers[backend] = plain.post("/invocations", json={"instances": REVIEWS}).json()
        said = [
            r.getMessage() for r in caplog.records if r.getMessage().startswith("variant only:")
        ]
        # One start-up line with auto, saying what runs which batches and why; none without.
        assert len(said) == (backend == "auto"), said
        if said:
            assert re.search(r"\(measured here( at [^,]+)?, PyTorch vs ONNX Runtime", said[0])
        caplog.clear()
    for auto, torch in zip(
        answers["auto"]["predictions"], answers["torch"]["predictions"], strict=True
    ):
        assert auto["label"] == torch["label"]
        assert auto["probability"] == pytest.approx(torch["probability"], abs=1e-5)


def test_an_unknown_backend_is_refused():
    from critic.errors import CriticError

    with pytest.raises(CriticError, match="backend must be torch, onnx or auto"):
        ServerSettings(backend="tensorrt")


def test_the_default_is_one_worker_per_core_this_process_may_use():
    from critic.system import available_cores

    assert ServerSettings().workers == available_cores() == len(os.sched_getaffinity(0))
    assert ServerSettings(workers=0).workers == available_cores()
    assert ServerSettings(workers=3).workers == 3
    assert ServerSettings.from_env({"CRITIC_WORKERS": "1"}).workers == 1


def test_a_lone_process_shows_itself_as_the_one_worker_never_restarted(client):
    workers = client.get("/variants").json()["workers"]
    ((process,),) = [workers["processes"]]
    assert process["pid"] == os.getpid() and process["started_at"] <= time.time()
    assert workers["restarts"] == 0 and workers["deaths"] == [] and not workers["crash_loop"]
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    (restarts,) = families["critic_worker_restarts"].samples
    assert restarts.name == "critic_worker_restarts_total" and restarts.value == 0
    (started,) = families["critic_worker_start_time_seconds"].samples
    assert started.labels == {"pid": str(os.getpid())}
