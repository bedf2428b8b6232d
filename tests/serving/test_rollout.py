"""Rollouts through a real two-worker `critic serve`: a slow challenger is rolled back at its
first step, a good one reaches 100%, a restart resumes the rollout, and the admin token guards
it all."""

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.cli import run_cli
from support.data import NEGATIVE, POSITIVE
from support.servers import (
    TWO_CORES,
    from_every_worker,
    running_server,
    two_worker_server,
    wait_for,
)

TOKEN = "rollout-admin-token"

pytestmark = pytest.mark.skipif(len(TWO_CORES) < 2, reason="needs two cores: a worker each")


def call(url, data=None, token=TOKEN):
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data, headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def rollout(server, plan, token=TOKEN):
    return call(f"{server.url}/admin/rollout", json.dumps(plan).encode(), token)


def shown(server):
    return call(f"{server.url}/rollout", token=None)[1]["rollout"]


def traffic(server, requests, reviews_per_request=40, repeat=20):
    """Requests drawn by weight (no variant named), a few at a time; the variants that
    answered them. Each review is a short one ``repeat`` times, IMDB's length: on one-line
    reviews the HTTP work, the same for every variant, hides the LSTM's cost."""
    reviews = [
        " ".join([review] * repeat)
        for review in ((POSITIVE + NEGATIVE) * reviews_per_request)[:reviews_per_request]
    ]
    body = "\n".join(json.dumps({"text": review}) for review in reviews).encode()

    def one(_):
        request = urllib.request.Request(
            f"{server.url}/invocations", body, {"Content-Type": "application/jsonlines"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.headers["X-Amzn-Invoked-Production-Variant"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(requests)))


def weights_everywhere(server):
    seen = from_every_worker(server.url)
    assert len(seen) == 2, "the second worker never answered"
    return [{v["name"]: v["weight"] for v in answer["variants"]} for answer in seen.values()]


FAULTY_WORDS = ("terrible", "awful")  # each in one of support.data's eight reviews


@pytest.fixture(scope="module")
def faulty_bundle(nbsvm_bundle, tmp_path_factory):
    """The nbsvm model with NaN weights on every n-gram holding one of FAULTY_WORDS, as a
    training run that diverged on a few features leaves it: it loads, answers most reviews,
    and fails on those with the words."""
    import numpy as np

    from critic.inference.bundle import load_bundle, save_bundle

    bundle = load_bundle(nbsvm_bundle)
    model = bundle.model
    for index, ngram in enumerate(model.vocabulary):
        if any(word in ngram.split() for word in FAULTY_WORDS):
            model.coefficients[index] = np.nan
    out = tmp_path_factory.mktemp("faulty") / "faulty"
    return save_bundle(out, bundle.config, None, model, bundle.metrics, None, bundle.calibration)


@pytest.fixture(scope="module")
def contrary_bundle(nbsvm_bundle, tmp_path_factory):
    """The nbsvm model with its weights negated: as fast and as sure of itself, and wrong
    wherever the champion is right -- what only the votes can show."""
    from critic.inference.bundle import load_bundle, save_bundle

    bundle = load_bundle(nbsvm_bundle)
    bundle.model.coefficients *= -1
    bundle.model.bias *= -1
    out = tmp_path_factory.mktemp("contrary") / "contrary"
    return save_bundle(
        out, bundle.config, None, bundle.model, bundle.metrics, None, bundle.calibration
    )


@pytest.fixture(scope="module")
def server(trained_bundle, nbsvm_bundle, faulty_bundle, contrary_bundle, tmp_path_factory):
    feedback = tmp_path_factory.mktemp("rollout") / "feedback.sqlite"
    with two_worker_server(
        ["serve", "--variant", f"champion={nbsvm_bundle}:1",
         "--variant", f"slow={trained_bundle}:0", "--variant", f"good={nbsvm_bundle}:0",
         "--variant", f"faulty={faulty_bundle}:0", "--variant", f"contrary={contrary_bundle}:0",
         "--feedback-db", feedback],
        env={"CRITIC_ADMIN_TOKEN": TOKEN},
    ) as server:  # fmt: skip
        yield server


def test_a_wrong_token_or_a_bad_plan_changes_nothing(server):
    status, body = rollout(server, {"variant": "slow"}, token="wrong")
    assert status == 401 and "admin token" in body["message"]
    status, body = rollout(server, {"variant": "nobody"})
    assert status == 404 and "variants: champion, slow, good, faulty, contrary" in body["message"]
    status, body = rollout(server, {"variant": "slow", "steps": [0.5, 0.1]})
    assert status == 400 and "rise" in body["message"]
    assert shown(server) is None
    for weights in weights_everywhere(server):
        assert weights == {
            "champion": 1.0,
            "slow": 0.0,
            "good": 0.0,
            "faulty": 0.0,
            "contrary": 0.0,
        }


def test_a_slow_challenger_is_rolled_back_at_its_first_step(server):
    plan = {"variant": "slow", "steps": [0.2, 0.5, 1], "bake_s": 600, "min_requests": 10,
            "limits": {"min_requests": 10}}  # fmt: skip
    status, body = rollout(server, plan)
    assert status == 201, body
    assert body["champion"] == "champion" and body["weights"]["slow"] == pytest.approx(0.2)
    # Another rollout, or a hand on the weights, while it runs: refused.
    assert rollout(server, {"variant": "good"})[0] == 409
    status, _ = call(f"{server.url}/admin/weights", b'{"slow": 1}')
    assert status == 409
    wait_for(lambda: all(w["slow"] == pytest.approx(0.2) for w in weights_everywhere(server)), 30)

    started = time.monotonic()
    answered = []
    while shown(server)["status"] == "running":
        assert time.monotonic() - started < 90, "the slow challenger was never rolled back"
        answered += traffic(server, 20)
    took = time.monotonic() - started
    ended = shown(server)
    assert ended["status"] == "rolled_back" and ended["step"] == 0
    trips = ended["history"][-1]["trips"]
    assert [trip["guardrail"] for trip in trips] == ["latency"], trips
    assert trips[0]["challenger"] > 2 * trips[0]["champion"]
    print(f"slow challenger rolled back {took:.1f} s after its rollout's first request, "
          f"{answered.count('slow')} of its requests answered, of {len(answered)}")  # fmt: skip
    wait_for(lambda: all(w["slow"] == 0 for w in weights_everywhere(server)), 30)
    metrics = urllib.request.urlopen(f"{server.url}/metrics", timeout=30).read().decode()
    assert 'critic_rollout_rollbacks_total{guardrail="latency",variant="slow"} 1.0' in metrics


def one_review_requests(server, requests):
    """Requests of one review each, cycling through the eight reviews (a quarter hold a
    FAULTY_WORD); the HTTP status of each, by the variant that answered."""
    reviews = POSITIVE + NEGATIVE

    def one(number):
        body = json.dumps({"text": reviews[number % len(reviews)]}).encode()
        request = urllib.request.Request(
            f"{server.url}/invocations", body, {"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.headers["X-Amzn-Invoked-Production-Variant"], response.status
        except urllib.error.HTTPError as error:
            return error.headers.get("X-Amzn-Invoked-Production-Variant"), error.code

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(requests)))


def test_a_challenger_that_fails_on_a_share_of_its_requests_is_rolled_back(server):
    # Latency is not what is judged here: the two are the same model, and a loose ratio
    # keeps a noisy p95 from tripping first.
    plan = {"variant": "faulty", "steps": [0.3, 1], "bake_s": 600, "min_requests": 10,
            "limits": {"min_requests": 10, "max_latency_ratio": 50}}  # fmt: skip
    status, body = rollout(server, plan)
    assert status == 201, body
    wait_for(lambda: all(w["faulty"] == pytest.approx(0.3) for w in weights_everywhere(server)), 30)
    started = time.monotonic()
    answered = []
    while shown(server)["status"] == "running":
        assert time.monotonic() - started < 90, "the faulty challenger was never rolled back"
        answered += one_review_requests(server, 16)
    took = time.monotonic() - started
    ended = shown(server)
    assert ended["status"] == "rolled_back" and ended["step"] == 0
    trips = ended["history"][-1]["trips"]
    assert [trip["guardrail"] for trip in trips] == ["server_errors"], trips
    # Only the faulty variant's requests with a faulty word failed, each with a 500; a
    # batch shared with other requests failed none of them.
    failed = [(variant, code) for variant, code in answered if code != 200]
    assert failed and all(code == 500 for _, code in failed), failed
    assert {variant for variant, _ in failed} <= {"faulty", None}
    assert all(code == 200 for variant, code in answered if variant == "champion")
    print(f"faulty challenger rolled back {took:.1f} s after its rollout's first request; "
          f"{len(failed)} of its {sum(v == 'faulty' for v, _ in answered)} requests failed, "
          f"of {len(answered)}")  # fmt: skip
    wait_for(lambda: all(w["faulty"] == 0 for w in weights_everywhere(server)), 30)


def voted_requests(server, reviews, truths):
    """One review a request, each answer then voted on as a reader would: right when its label
    is the review's true one. The variants that answered."""
    from support.feedback import post_vote

    def one(item):
        review, truth = item
        body = json.dumps({"text": review}).encode()
        request = urllib.request.Request(
            f"{server.url}/invocations", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            variant = response.headers["X-Amzn-Invoked-Production-Variant"]
            prediction = json.loads(response.read())["predictions"][0]
        verdict = "right" if prediction["label"] == truth else "wrong"
        assert post_vote(server.url, variant, prediction, review[:200], verdict) == 201
        return variant

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, zip(reviews, truths, strict=True)))


def test_a_challenger_the_votes_find_worse_is_rolled_back(server):
    from critic.data.sources import load_embedded
    from critic.data.split import stratified_sample

    test = stratified_sample(load_embedded("imdb"), 600, seed=1)
    truths = ["positive" if int(label) else "negative" for label in test.labels]
    # Errors and latency cannot tell the two apart (the same model, negated): only the
    # accuracy guardrail, on the page's votes, can.
    plan = {"variant": "contrary", "steps": [0.5, 1], "bake_s": 600, "min_requests": 10,
            "limits": {"max_latency_ratio": 50}}  # fmt: skip
    status, body = rollout(server, plan)
    assert status == 201, body
    wait_for(
        lambda: all(w["contrary"] == pytest.approx(0.5) for w in weights_everywhere(server)), 30
    )
    started = time.monotonic()
    answered = []
    for first in range(0, len(truths), 40):
        if shown(server)["status"] != "running":
            break
        answered += voted_requests(
            server, test.texts[first : first + 40], truths[first : first + 40]
        )
    wait_for(lambda: shown(server)["status"] != "running", 10)
    took = time.monotonic() - started
    ended = shown(server)
    assert ended["status"] == "rolled_back", ended
    trips = ended["history"][-1]["trips"]
    assert [trip["guardrail"] for trip in trips] == ["accuracy"], trips
    print(f"contrary challenger rolled back on the votes {took:.1f} s after its first request, "
          f"after {len(answered)} voted answers ({answered.count('contrary')} its own): "
          f"{trips[0]['text']}")  # fmt: skip
    wait_for(lambda: all(w["contrary"] == 0 for w in weights_everywhere(server)), 30)


def test_a_good_challenger_reaches_all_the_traffic(server):
    plan = {"variant": "good", "steps": [0.25, 0.6, 1], "bake_s": 1, "min_requests": 5}
    status, body = rollout(server, plan)
    assert status == 201, body
    started = time.monotonic()
    while shown(server)["status"] == "running":
        assert time.monotonic() - started < 90, f"stuck: {shown(server)}"
        traffic(server, 12, reviews_per_request=2)
    ended = shown(server)
    assert ended["status"] == "completed", ended
    assert [event["event"] for event in ended["history"]] == [
        "started",
        "step",
        "step",
        "completed",
    ]
    wait_for(
        lambda: all(w["good"] == 1 and w["champion"] == 0 for w in weights_everywhere(server)), 30
    )
    assert set(traffic(server, 10, reviews_per_request=1)) == {"good"}
    metrics = urllib.request.urlopen(f"{server.url}/metrics", timeout=30).read().decode()
    assert "critic_rollout_step{" not in metrics  # none runs


def test_a_restart_resumes_the_rollout_where_it_was(nbsvm_bundle, tmp_path):
    # Driven from the shell, as an operator would: critic rollout start / status / stop.
    feedback = tmp_path / "feedback.sqlite"
    args = ["serve", "--variant", f"champion={nbsvm_bundle}:1",
            "--variant", f"good={nbsvm_bundle}:0", "--feedback-db", feedback]  # fmt: skip
    admin = {"CRITIC_ADMIN_TOKEN": TOKEN}
    with running_server(args, env=admin) as first:
        refused = run_cli("rollout", "start", "good", "--url", first.url,
                          env={"CRITIC_ADMIN_TOKEN": "not-the-token"})  # fmt: skip
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.strip().splitlines() == [
            "critic: error: rollout: 401: a valid 'Authorization: Bearer <admin token>' header "
            "is required"
        ]
        started = run_cli("rollout", "start", "good", "--steps", "30,100", "--bake-minutes",
                          "60", "--url", first.url, env=admin)  # fmt: skip
        assert started.returncode == 0, started.stderr
        body = json.loads(started.stdout)
        assert body["steps"] == [0.3, 1.0] and body["bake_s"] == 3600
    with running_server(args, env=admin) as second:
        again = json.loads(run_cli("rollout", "status", "--url", second.url, check=True).stdout)
        again = again["rollout"]
        assert again["status"] == "running" and again["id"] == body["id"] and again["step"] == 0
        assert again["bake_left_s"] > 3500
        # The command line says 0 for "good"; the rollout puts it back at its step's share.
        variants = lambda: call(f"{second.url}/variants", token=None)[1]["variants"]  # noqa: E731
        wait_for(
            lambda: {v["name"]: v["share"] for v in variants()}["good"] == pytest.approx(0.3), 30
        )
        stopped = run_cli("rollout", "stop", "--url", second.url, env=admin)
        assert stopped.returncode == 0 and json.loads(stopped.stdout)["status"] == "rolled_back"
        wait_for(lambda: {v["name"]: v["share"] for v in variants()}["good"] == 0, 30)
        # Rolled back: status says so with its exit; a second stop finds nothing to stop.
        assert run_cli("rollout", "status", "--url", second.url).returncode == 1
        assert call(f"{second.url}/admin/rollout/stop", b"{}")[0] == 409
