"""Shadow variants: the live answer never waits for the shadow nor changes; the shadow's
figures appear; its failures and its slowness stay its own."""

import gc
import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from critic.apps.endpoint import create_app
from critic.errors import CriticError
from critic.inference.predictor import Predictor
from critic.serving.settings import ServerSettings
from critic.serving.sidecar.shadow import SAMPLE_SIZE, ShadowSpec, describe_shadows, shadow_specs
from critic.serving.variants import VariantSpec
from support.cli import run_cli
from support.servers import running_server, wait_for

REVIEWS = [
    "A wonderful, moving film! The cast is superb.",
    "Not good. Boring and far too long.",
    "It was fine, I guess? Some good scenes, some bad.",
    "I don't think I have ever laughed so much.",
    "The plot made no sense and the acting was wooden.",
    "A quiet, patient film that rewards attention.",
]


@pytest.fixture(scope="module")
def servers(trained_bundle, second_bundle):
    """The same endpoint twice: without a shadow, and with second_bundle shadowing it."""
    # A queue long enough that no copy of these few requests is dropped (drops: tested below).
    with (
        running_server(["serve", trained_bundle, "--feedback-db", "off"]) as plain,
        running_server(
            ["serve", trained_bundle, "--shadow", f"candidate={second_bundle}",
             "--shadow-queue", "1000", "--feedback-db", "off"]
        ) as shadowed,
    ):  # fmt: skip
        yield plain.url, shadowed.url


def post(url, reviews, accept="application/json"):
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps({"instances": reviews}).encode(),
        headers={"Content-Type": "application/json", "Accept": accept},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def without_ids(body):
    answer = json.loads(body)
    for prediction in answer["predictions"]:
        prediction.pop("id")  # signed per answer: differs between any two answers
    return answer


def shadows(url):
    with urllib.request.urlopen(f"{url}/api/ab/shadows", timeout=30) as response:
        return json.load(response)


def settled(shadow):
    return shadow["answered"] + shadow["errors"] + shadow["dropped"] == shadow["copies"]


def test_a_shadowed_endpoint_answers_exactly_as_without_its_shadow(servers):
    plain, shadowed = servers
    for reviews in ([REVIEWS[0]], REVIEWS, REVIEWS[2:5]):
        assert without_ids(post(shadowed, reviews)) == without_ids(post(plain, reviews))
    assert post(shadowed, REVIEWS, "text/plain") == post(plain, REVIEWS, "text/plain")
    with urllib.request.urlopen(f"{plain}/api/ab/shadows", timeout=30) as response:
        assert json.load(response)["shadows"] == []


def test_the_shadows_counts_agreement_and_disagreements_appear(
    servers, trained_bundle, second_bundle
):
    _, shadowed = servers
    # Once the copies of earlier requests are all done with.
    (before,) = wait_for(lambda: [s for s in shadows(shadowed)["shadows"] if settled(s)])
    for reviews in (REVIEWS[:3], REVIEWS[3:], REVIEWS):
        post(shadowed, reviews)
    (shadow,) = wait_for(
        lambda: [
            s
            for s in shadows(shadowed)["shadows"]
            if settled(s) and s["copies"] == before["copies"] + 3
        ]
    )
    assert shadow["name"] == "candidate" and shadow["fraction"] == 1.0
    assert shadow["copies"] == before["copies"] + 3
    assert shadow["errors"] == 0 and shadow["dropped"] == 0
    assert shadow["latency_ms"]["p50"] > 0
    # The agreement is what the two models say of the same reviews.
    live = Predictor.load(trained_bundle).predict(REVIEWS)
    other = Predictor.load(second_bundle).predict(REVIEWS)
    disagree = [r for r, a, b in zip(REVIEWS, live, other, strict=True) if a["label"] != b["label"]]
    new_reviews = shadow["reviews"] - before["reviews"]
    assert new_reviews == 2 * len(REVIEWS)
    agreed = (
        shadow["agreement"] * shadow["reviews"] - (before["agreement"] or 0) * before["reviews"]
    )
    assert round(agreed) == 2 * (len(REVIEWS) - len(disagree))
    gap = sum(abs(a["probability"] - b["probability"]) for a, b in zip(live, other, strict=True))
    total_gap = shadow["mean_probability_gap"] * shadow["reviews"]
    previous_gap = (before["mean_probability_gap"] or 0) * before["reviews"]
    assert total_gap - previous_gap == pytest.approx(2 * gap, abs=1e-4)
    assert {d["review"] for d in shadow["disagreements"]} == set(disagree)
    for item in shadow["disagreements"]:
        assert item["live"]["label"] != item["shadow"]["label"]
    with urllib.request.urlopen(f"{shadowed}/metrics", timeout=30) as response:
        metrics = response.read().decode()
    assert 'critic_shadow_requests_total{outcome="answered",shadow="candidate"}' in metrics


def client_for(trained_bundle, second_bundle, **settings):
    app = create_app(
        [VariantSpec("champion", trained_bundle)],
        ServerSettings(feedback_db="off", **settings),
        shadows=[ShadowSpec("candidate", second_bundle)],
    )
    return TestClient(app)


def test_a_shadow_whose_model_raises_changes_no_live_answer(trained_bundle, second_bundle):
    expected = Predictor.load(trained_bundle).predict(REVIEWS)

    def broken(reviews, explain=False):
        raise RuntimeError("the shadow's model is broken")

    with client_for(trained_bundle, second_bundle) as client:
        client.app.state.endpoint.shadows.shadows["candidate"].batcher.predict = broken
        for _ in range(3):
            response = client.post("/invocations", json=REVIEWS)
            assert response.status_code == 200
            got = response.json()["predictions"]
            assert [p["label"] for p in got] == [p["label"] for p in expected]
        (shadow,) = wait_for(
            lambda: [s for s in client.get("/api/ab/shadows").json()["shadows"] if s["errors"] == 3]
        )
    assert shadow["answered"] == 0 and shadow["agreement"] is None
    assert "the shadow's model is broken" in shadow["last_error"]


def test_a_saturated_shadow_drops_copies_rather_than_slowing_live_requests(
    trained_bundle, second_bundle
):
    shadow_seconds = 0.3
    with client_for(trained_bundle, second_bundle, shadow_queue=1) as client:
        shadow = client.app.state.endpoint.shadows.shadows["candidate"]
        predict = shadow.batcher.predict
        shadow.batcher.predict = lambda reviews, explain=False: (
            time.sleep(shadow_seconds),
            predict(reviews),
        )[1]
        latencies = []
        lock = threading.Lock()

        def one(index):
            started = time.perf_counter()
            response = client.post("/invocations", content=REVIEWS[index % len(REVIEWS)],
                                   headers={"Content-Type": "text/plain"})  # fmt: skip
            with lock:
                latencies.append(time.perf_counter() - started)
            return response.status_code

        # The endpoint runs in this process (TestClient): a garbage collection of the whole
        # suite's heap here (seconds, late in a full run) would be the test's pause, not the
        # endpoint's -- it is what made this test fail now and then.
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                statuses = list(pool.map(one, range(40)))
            elapsed = time.perf_counter() - started
        finally:
            gc.enable()
        figures = client.get("/api/ab/shadows").json()["shadows"][0]
    assert statuses == [200] * 40
    # Had the live requests waited for the shadow, 40 of them would take 12 s.
    assert elapsed < 40 * shadow_seconds / 4
    assert max(latencies) < shadow_seconds
    assert figures["dropped"] > 0
    assert figures["copies"] == 40
    assert figures["dropped"] + figures["answered"] + figures["errors"] <= 40


def test_a_shadow_is_named_like_a_variant_and_copies_a_fraction():
    assert ShadowSpec.parse("candidate=runs/gru:0.25") == ShadowSpec("candidate", "runs/gru", 0.25)
    assert ShadowSpec.parse("c=C:/runs/gru").bundle.as_posix() == "C:/runs/gru"
    for text, message in [
        ("candidate", "NAME=BUNDLE"),
        ("candidate=runs/gru:0", r"\(0, 1\]"),
        ("candidate=runs/gru:1.5", r"\(0, 1\]"),
        ("bad_name=runs/gru", "not valid"),
    ]:
        with pytest.raises(CriticError, match=message):
            ShadowSpec.parse(text)
    with pytest.raises(CriticError, match="repeated: champion"):
        shadow_specs(["champion=runs/gru"], ["champion"])


def test_critic_serve_refuses_a_bad_shadow_in_one_line(trained_bundle, tmp_path):
    completed = run_cli(
        "serve", trained_bundle, "--shadow", f"AllTraffic={trained_bundle}", timeout=60
    )
    assert completed.returncode != 0
    assert "repeated: AllTraffic" in completed.stderr
    assert "Traceback" not in completed.stderr
    completed = run_cli("serve", trained_bundle, "--shadow", f"candidate={tmp_path}", timeout=60)
    assert completed.returncode != 0 and "Traceback" not in completed.stderr


def _snapshot(copies, answered, reviews, agreed, gap, latencies, disagreements, error=None):
    return {
        "name": "candidate", "model": "gru", "bundle": "runs/gru", "fraction": 0.5, "duty": 0.25,
        "copies": copies, "answered": answered, "errors": copies - answered, "dropped": 0,
        "reviews": reviews, "agreed": agreed, "probability_gap": gap,
        "latencies": latencies, "passes": latencies,
        "last_error": error[0] if error else None, "last_error_at": error[1] if error else 0.0,
        "disagreements": disagreements,
    }  # fmt: skip


def test_the_figures_of_several_workers_add_up_as_one_shadow():
    def disagreement(at):
        return {"review": f"review {at}", "variant": "a", "at": at,
                "live": {"label": "positive", "probability": 0.9},
                "shadow": {"label": "negative", "probability": 0.2}}  # fmt: skip

    first = _snapshot(4, 3, 10, 9, 1.0, [0.001, 0.002], [disagreement(5.0)], ("old", 1.0))
    second = _snapshot(6, 6, 30, 21, 2.0, [0.003, 0.004, 0.005],
                       [disagreement(t) for t in range(7, 30)], ("new", 2.0))  # fmt: skip
    (merged,) = describe_shadows([[first], [second]])
    assert merged["workers"] == 2
    assert (merged["copies"], merged["answered"], merged["errors"]) == (10, 9, 1)
    assert merged["error_rate"] == pytest.approx(0.1)
    # Ratios of the sums, not a mean of each worker's ratio (0.9 and 0.7).
    assert merged["agreement"] == pytest.approx(30 / 40)
    assert merged["mean_probability_gap"] == pytest.approx(3.0 / 40)
    assert merged["latency_ms"] == {"p50": 3.0, "p95": 4.8, "window": 5}
    assert merged["last_error"] == "new"
    # The latest of all the workers' disagreements, newest first, as many as one keeps.
    assert [d["at"] for d in merged["disagreements"]] == list(range(29, 9, -1))
    assert len(merged["disagreements"]) == SAMPLE_SIZE
    # One worker alone reads as before.
    (alone,) = describe_shadows([[first]])
    assert alone["workers"] == 1 and alone["agreement"] == pytest.approx(0.9)


def test_a_shadows_process_ends_when_the_worker_that_started_it_is_killed(nbsvm_bundle):
    import os
    import signal
    import subprocess
    import sys

    # A stand-in for a worker: it starts one shadow's process, says so, and waits to be killed.
    worker = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\n"
            "from critic.serving.sidecar.shadow import ShadowProcess, ShadowSpec\n"
            f"process = ShadowProcess(ShadowSpec('s', {str(nbsvm_bundle)!r}), 'cpu', 'torch')\n"
            "print(process.model_name, flush=True)\n"
            "time.sleep(600)\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert worker.stdout.readline().strip()  # the shadow's model loaded in its process
        children = [
            int(pid) for pid in subprocess.run(
                ["ps", "-o", "pid=", "--ppid", str(worker.pid)], capture_output=True, text=True
            ).stdout.split()
        ]  # fmt: skip
        assert children
        os.kill(worker.pid, signal.SIGKILL)  # never a chance to shut its pool down
        worker.wait(timeout=10)

        def alive(pid: int) -> bool:
            try:  # a zombie is gone but for its entry, which init reaps
                with open(f"/proc/{pid}/stat") as stat:
                    return stat.read().split(") ", 1)[1][0] != "Z"
            except FileNotFoundError:
                return False

        wait_for(lambda: not any(alive(pid) for pid in children), seconds=15)
    finally:
        worker.kill()
        worker.wait(timeout=10)
