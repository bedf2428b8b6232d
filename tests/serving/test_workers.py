"""`critic serve` with two worker processes on one port: a weight change reaches both, the
metrics count across both, feedback goes to the one file, the A/B view's shadow and capture
figures add up both, and SIGTERM stops them cleanly."""

import json
import os
import re
import threading
import time
import urllib.request

import pytest

from support.servers import start_server, wait_for

TOKEN = "workers-admin-token"


def fetch(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers, response.read()


TWO_CORES = sorted(os.sched_getaffinity(0))[:2]


@pytest.mark.skipif(len(TWO_CORES) < 2, reason="needs two cores: one worker each, by default")
def test_two_workers_share_weights_metrics_feedback_and_shadows_and_stop_cleanly(
    trained_bundle, second_bundle, tmp_path
):
    feedback = tmp_path / "feedback.sqlite"
    capture = tmp_path / "capture"
    # The default worker count, on a process given exactly two cores: two workers.
    server = start_server(
        ["serve",
         "--variant", f"champion={trained_bundle}:1", "--variant", f"challenger={second_bundle}:1",
         "--feedback-db", feedback,
         "--shadow", f"candidate={second_bundle}", "--capture-dir", capture],
        # CRITIC_WORKERS is set to 1 for the other tests by conftest.
        env={"CRITIC_ADMIN_TOKEN": TOKEN, "CRITIC_WORKERS": None},
        preexec_fn=lambda: os.sched_setaffinity(0, TWO_CORES),
        seconds=120,
    )  # fmt: skip
    url = server.url
    try:
        parameters = json.loads(fetch(f"{url}/execution-parameters")[2])
        assert parameters["MaxConcurrentTransforms"] == 2  # one worker per core, by default
        weights = json.dumps({"champion": 0, "challenger": 1}).encode()
        status, _, _ = fetch(
            f"{url}/admin/weights", weights,
            {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 200
        # Each new connection may land on either worker, and the kernel favours an idle one:
        # ask from several threads at once (so that one worker is busy while the other
        # accepts) until both have answered -- the second may still be loading its models.
        seen = {}
        deadline = time.monotonic() + 90

        def ask():
            while len(seen) < 2 and time.monotonic() < deadline:
                variants = json.loads(fetch(f"{url}/variants")[2])
                seen[variants["worker"]] = {v["name"]: v["weight"] for v in variants["variants"]}

        askers = [threading.Thread(target=ask) for _ in range(6)]
        for thread in askers:
            thread.start()
        for thread in askers:
            thread.join()
        assert len(seen) == 2, "the second worker never answered"
        assert all(w == {"champion": 0.0, "challenger": 1.0} for w in seen.values()), seen

        answered = []
        for _ in range(30):
            _, headers, body = fetch(
                f"{url}/invocations", b"A fine film.", {"Content-Type": "text/plain"}
            )
            answered.append((headers["x-Amzn-Invoked-Production-Variant"], json.loads(body)))
        assert {variant for variant, _ in answered} == {"challenger"}

        metrics = fetch(f"{url}/metrics")[2].decode()
        counted = sum(
            float(value)
            for value in re.findall(
                r'critic_requests_total\{status="200",variant="challenger"\} (\S+)', metrics
            )
        )
        assert counted == 30

        # Feedback on an answer one worker gave is taken by whichever worker receives it.
        for _, body in answered[:6]:
            (prediction,) = body["predictions"]
            vote = {"review": "A fine film.", "variant": "challenger", "label": prediction["label"],
                    "feedback": "right", "answer_id": prediction["id"]}  # fmt: skip
            status, _, _ = fetch(
                f"{url}/api/feedback",
                json.dumps(vote).encode(),
                {"Content-Type": "application/json"},
            )
            assert status == 201
        ab = json.loads(fetch(f"{url}/api/ab")[2])
        challenger = next(v for v in ab["variants"] if v["name"] == "challenger")
        assert challenger["requests"] == 30 and challenger["feedback"]["right"] == 6

        # Each worker runs its own copy of the shadow and its own capture writer (one capture
        # file each): the view adds them up, once both have taken requests.
        sent = len(answered)

        def burst():
            for _ in range(5):
                fetch(f"{url}/invocations", b"A fine film.", {"Content-Type": "text/plain"})

        for _ in range(10):
            if len(list(capture.rglob("*.jsonl"))) >= 2:
                break
            bursts = [threading.Thread(target=burst) for _ in range(4)]
            for thread in bursts:
                thread.start()
            for thread in bursts:
                thread.join()
            sent += 20
        assert len(list(capture.rglob("*.jsonl"))) == 2, "one worker took every request"

        def settled():
            view = json.loads(fetch(f"{url}/api/ab/shadows")[2])
            (shadow,) = view["shadows"]
            done = shadow["answered"] + shadow["errors"] + shadow["dropped"]
            complete = view["capture"]["captured"] + view["capture"]["dropped"] == sent
            return view if view["workers"] == 2 and done == sent and complete else None

        view = wait_for(settled)
        (shadow,) = view["shadows"]
        assert shadow["workers"] == 2 and shadow["copies"] == sent and shadow["errors"] == 0
        assert shadow["answered"] > 0 and shadow["agreement"] == 1.0  # the challenger, shadowed
        assert view["capture"]["captured"] == sent
    finally:
        code = server.stop(timeout=60)  # SIGTERM, then SIGKILL if still running a minute later
    assert code == 0, server.log()
