"""`critic serve` with two worker processes on one port: a weight change reaches both, the
metrics count across both, feedback goes to the one file, the A/B view's shadow and capture
figures add up both, and SIGTERM stops them cleanly.

One server for the module, each feature a test of its own. What the tests send is counted
(Traffic): the figures each test checks are the requests of the whole module so far, whichever
tests ran before it. The weights are changed once, by a fixture, before any request is sent:
every answer then comes from the challenger, which is also what the shadow runs.
"""

import json
import re
import threading
import time
import urllib.request
from types import SimpleNamespace

import pytest

from support.feedback import post_vote
from support.servers import TWO_CORES, from_every_worker, two_worker_server, wait_for

TOKEN = "workers-admin-token"


def fetch(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers, response.read()


pytestmark = pytest.mark.skipif(
    len(TWO_CORES) < 2, reason="needs two cores: one worker each, by default"
)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    folder = tmp_path_factory.mktemp("workers")
    return SimpleNamespace(feedback=folder / "feedback.sqlite", capture=folder / "capture")


@pytest.fixture(scope="module")
def server(trained_bundle, second_bundle, folders):
    """The default worker count, on a process given exactly two cores: two workers. Stopped
    by the last test (test_sigterm_stops_both_workers_and_the_server_exits_0), else here."""
    with two_worker_server(
        ["serve", "--variant", f"champion={trained_bundle}:1",
         "--variant", f"challenger={second_bundle}:1", "--feedback-db", folders.feedback,
         "--shadow", f"candidate={second_bundle}", "--capture-dir", folders.capture],
        env={"CRITIC_ADMIN_TOKEN": TOKEN},
    ) as server:  # fmt: skip
        yield server


class Traffic:
    """The invocations the module's tests sent, every one answered."""

    def __init__(self, url):
        self.url = url
        self.sent = 0
        self._lock = threading.Lock()

    def invoke(self):
        """One review to /invocations; the variant that answered and the answer."""
        _, headers, body = fetch(
            f"{self.url}/invocations", b"A fine film.", {"Content-Type": "text/plain"}
        )
        with self._lock:
            self.sent += 1
        return headers["x-Amzn-Invoked-Production-Variant"], json.loads(body)


@pytest.fixture(scope="module")
def weights_changed(server):
    """The status of a change of weights sent to one worker: challenger only."""
    weights = json.dumps({"champion": 0, "challenger": 1}).encode()
    status, _, _ = fetch(
        f"{server.url}/admin/weights", weights,
        {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    return status


@pytest.fixture(scope="module")
def traffic(server, weights_changed):
    return Traffic(server.url)


@pytest.fixture(scope="module")
def answered(traffic):
    """Thirty invocations after the change of weights: (variant, answer) each."""
    return [traffic.invoke() for _ in range(30)]


def test_the_default_is_one_worker_per_core(server):
    parameters = json.loads(fetch(f"{server.url}/execution-parameters")[2])
    assert parameters["MaxConcurrentTransforms"] == 2  # one worker per core, by default


def test_a_weight_change_sent_to_one_worker_reaches_both(server, weights_changed):
    assert weights_changed == 200
    # The second worker may still be loading its models: asked until both have answered.
    seen = {
        pid: {v["name"]: v["weight"] for v in variants["variants"]}
        for pid, variants in from_every_worker(server.url).items()
    }
    assert len(seen) == 2, "the second worker never answered"
    assert all(w == {"champion": 0.0, "challenger": 1.0} for w in seen.values()), seen


def test_after_the_weight_change_every_worker_sends_every_request_to_the_challenger(answered):
    assert {variant for variant, _ in answered} == {"challenger"}


def test_the_metrics_count_the_requests_of_both_workers(server, traffic, answered):
    metrics = fetch(f"{server.url}/metrics")[2].decode()
    counted = sum(
        float(value)
        for value in re.findall(
            r'critic_requests_total\{status="200",variant="challenger"\} (\S+)', metrics
        )
    )
    assert counted == traffic.sent  # the 30 answered, and any other test's


def test_feedback_on_one_workers_answer_is_taken_by_either_and_counted_in_the_ab_view(
    server, traffic, answered
):
    # Feedback on an answer one worker gave is taken by whichever worker receives it.
    for _, body in answered[:6]:
        (prediction,) = body["predictions"]
        assert post_vote(server.url, "challenger", prediction) == 201
    ab = json.loads(fetch(f"{server.url}/api/ab")[2])
    challenger = next(v for v in ab["variants"] if v["name"] == "challenger")
    assert challenger["requests"] == traffic.sent and challenger["feedback"]["right"] == 6


def test_the_ab_view_adds_up_the_shadow_and_capture_figures_of_both_workers(
    server, traffic, answered, folders
):
    # Each worker runs its own copy of the shadow and its own capture writer (one capture
    # file each): the view adds them up, once both have taken requests.
    def burst():
        for _ in range(5):
            traffic.invoke()

    # Which worker accepts is the kernel's choice: with the other core busy (make test runs
    # two test processes) one worker may take many bursts in a row, so keep on for a while.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(list(folders.capture.rglob("*.jsonl"))) >= 2:
            break
        bursts = [threading.Thread(target=burst) for _ in range(8)]
        for thread in bursts:
            thread.start()
        for thread in bursts:
            thread.join()
    assert len(list(folders.capture.rglob("*.jsonl"))) == 2, "one worker took every request"
    sent = traffic.sent

    def settled():
        view = json.loads(fetch(f"{server.url}/api/ab/shadows")[2])
        (shadow,) = view["shadows"]
        done = shadow["answered"] + shadow["errors"] + shadow["dropped"]
        complete = view["capture"]["captured"] + view["capture"]["dropped"] == sent
        return view if view["workers"] == 2 and done == sent and complete else None

    view = wait_for(settled)
    (shadow,) = view["shadows"]
    assert shadow["workers"] == 2 and shadow["copies"] == sent and shadow["errors"] == 0
    assert shadow["answered"] > 0 and shadow["agreement"] == 1.0  # the challenger, shadowed
    assert view["capture"]["captured"] == sent


# Last in the module: it stops the server the tests above share.
def test_sigterm_stops_both_workers_and_the_server_exits_0(server):
    code = server.stop(timeout=60)  # SIGTERM, then SIGKILL if still running a minute later
    assert code == 0, server.log()
