"""critic serve's supervisor: a worker's death is logged, counted and shown, its replacement
serves the same variants and weights, and workers that keep dying are reported once.

The server tests kill workers of a real two-worker `critic serve` with SIGKILL, as the
kernel's OOM killer would, while clients keep sending reviews.
"""

import json
import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from http.client import HTTPException

import pytest

from critic.apps.supervisor import CrashLoop, how_it_ended
from support.feedback import post_vote
from support.servers import TWO_CORES, from_every_worker, two_worker_server, wait_for

TOKEN = "supervisor-admin-token"


def fetch(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.headers, response.read()


def get_json(url):
    """GET, asked again when the connection was one a killed worker held."""
    for attempt in range(5):
        try:
            return json.loads(fetch(url)[2])
        except (urllib.error.URLError, ConnectionError) as error:
            if isinstance(error, urllib.error.HTTPError) or attempt == 4:
                raise
            time.sleep(0.2)


# -- the rules, on given times --------------------------------------------------------------


def test_how_a_worker_ended_is_said_in_words():
    assert how_it_ended(-9, answered=True) == "was killed by SIGKILL"
    assert how_it_ended(-11, answered=True) == "was killed by SIGSEGV"
    assert how_it_ended(1, answered=True) == "exited with status 1"
    assert how_it_ended(-9, answered=False).startswith("stopped answering")


def test_a_crash_loop_starts_at_the_third_death_within_the_window_and_its_delays_double():
    loop = CrashLoop(deaths=3, window_s=60, max_delay_s=5)
    assert loop.died(0) == (False, 0.0)
    assert loop.died(10) == (False, 0.0)
    assert loop.died(20) == (True, 1.0)  # the third within 60 s: a loop, said once
    assert [loop.died(t) for t in (21, 22, 23, 24)] == [
        (False, 2.0),
        (False, 4.0),
        (False, 5.0),  # capped
        (False, 5.0),
    ]
    assert loop.calmed(60) is None  # the latest death is 36 s old
    assert loop.calmed(85) == 5  # a quiet minute: over, after five restarts
    assert loop.calmed(90) is None and not loop.looping


def test_deaths_spread_wider_than_the_window_are_no_loop():
    loop = CrashLoop(deaths=3, window_s=60)
    assert [loop.died(t) for t in (0, 40, 80, 120)] == [(False, 0.0)] * 4
    assert not loop.looping


# -- a real two-worker server ---------------------------------------------------------------


two_cores = pytest.mark.skipif(len(TWO_CORES) < 2, reason="needs two cores: one worker each")


@pytest.fixture(scope="module")
def server(trained_bundle, second_bundle, tmp_path_factory):
    feedback = tmp_path_factory.mktemp("supervisor") / "feedback.sqlite"
    with two_worker_server(
        ["serve", "--variant", f"champion={trained_bundle}:1",
         "--variant", f"challenger={second_bundle}:1", "--feedback-db", feedback,
         "--workers", "2"],
        env={"CRITIC_ADMIN_TOKEN": TOKEN},
    ) as server:  # fmt: skip
        yield server


class Load:
    """Clients sending reviews until stopped: how many were answered and how many lost."""

    def __init__(self, url, clients=4):
        self.url = url
        self.answered = self.lost = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._send) for _ in range(clients)]

    def _send(self):
        while not self._stop.is_set():
            try:
                status, _, _ = fetch(
                    f"{self.url}/invocations", b"A fine film.", {"Content-Type": "text/plain"}
                )
                ok = status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError, HTTPException):
                # A connection the killed worker held; or its answer cut off mid-body
                # (IncompleteRead): counted by the server, never read whole here.
                ok = False
            with self._lock:
                self.answered += ok
                self.lost += not ok

    def __enter__(self):
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join()


def workers(server):
    return get_json(f"{server.url}/variants")["workers"]


def workers_once(server, condition, seconds=60):
    """The workers on /variants, as soon as ``condition`` holds of them."""

    def look():
        described = workers(server)
        return described if condition(described) else None

    return wait_for(look, seconds)


def restarts_metric(server):
    text = fetch(f"{server.url}/metrics")[2].decode()
    (value,) = re.findall(r"^critic_worker_restarts_total (\S+)$", text, re.M)
    return float(value)


def answered_by(server, pid):
    """/variants as the worker ``pid`` answers it."""
    seen = from_every_worker(server.url)
    assert pid in seen, f"worker {pid} never answered"
    return seen[pid]


def vote_once(server):
    _, _, body = fetch(f"{server.url}/invocations", b"A fine film.", {"Content-Type": "text/plain"})
    (prediction,) = json.loads(body)["predictions"]
    assert post_vote(server.url, "challenger", prediction) == 201


def challenger_row(server):
    ab = get_json(f"{server.url}/api/ab")
    return next(v for v in ab["variants"] if v["name"] == "challenger")


@two_cores
def test_a_killed_worker_is_logged_counted_and_replaced_by_one_serving_the_same_weights(server):
    before = workers_once(server, lambda w: len(w["processes"]) == 2)
    assert before["restarts"] == 0 and restarts_metric(server) == 0
    weights = json.dumps({"champion": 0, "challenger": 1}).encode()
    status, _, _ = fetch(
        f"{server.url}/admin/weights", weights,
        {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )  # fmt: skip
    assert status == 200
    vote_once(server)
    assert challenger_row(server)["feedback"]["right"] == 1

    victim = before["processes"][0]["pid"]
    with Load(server.url) as load:
        time.sleep(1)
        os.kill(victim, signal.SIGKILL)
        after = workers_once(server, lambda w: w["restarts"] == 1)
        (new,) = {p["pid"] for p in after["processes"]} - {p["pid"] for p in before["processes"]}
        replacement = answered_by(server, new)
        answered_at_kill = load.answered
        time.sleep(1)
    assert load.answered > answered_at_kill, "the endpoint stopped answering"

    pids = {p["pid"] for p in after["processes"]}
    assert victim not in pids and len(pids) == 2
    (death,) = after["deaths"]
    assert death["pid"] == victim and death["ended"] == "was killed by SIGKILL"
    assert death["ran_s"] > 0 and not after["crash_loop"]
    started = {p["pid"]: p["started_at"] for p in after["processes"]}
    assert started[new] > max(p["started_at"] for p in before["processes"])
    line = wait_for(
        lambda: re.search(rf"Worker \[{victim}\] was killed by SIGKILL after [\d.]+ s; "
                          rf"worker \[{new}\] starts in its place \(restart 1\)", server.log())
    )  # fmt: skip
    assert line
    assert restarts_metric(server) == 1
    # The new worker took up the weights changed before the kill, and the votes are intact.
    weights = {v["name"]: v["weight"] for v in replacement["variants"]}
    assert weights == {"champion": 0.0, "challenger": 1.0}
    challenger = challenger_row(server)
    assert challenger["feedback"]["right"] == 1
    # Every answered request is counted, the dead worker's included; a lost one may be.
    sent = load.answered + 1  # and the voted one
    assert sent <= challenger["requests"] <= sent + load.lost


@two_cores
def test_workers_that_keep_dying_are_reported_once_while_the_other_answers_on(server):
    survivor = None
    kills = []
    with Load(server.url, clients=2) as load:
        for _ in range(5):
            current = workers(server)
            restarts = current["restarts"]
            if current["crash_loop"]:
                break
            survivor = survivor or current["processes"][0]["pid"]
            (victim,) = [p["pid"] for p in current["processes"] if p["pid"] != survivor]
            os.kill(victim, signal.SIGKILL)
            kills.append(victim)
            # Its replacement is listed (after the loop's growing delay, if it started one).
            workers_once(server, lambda w, before=restarts: w["restarts"] > before)
        looped = workers(server)
        assert looped["crash_loop"], looped
        # One more death during the loop: counted, its restart delayed, no line of its own.
        (quiet,) = [p["pid"] for p in looped["processes"] if p["pid"] != survivor]
        os.kill(quiet, signal.SIGKILL)
        looped = workers_once(server, lambda w: w["restarts"] > looped["restarts"])
    assert survivor in {p["pid"] for p in looped["processes"]}
    assert load.answered > 0
    log = server.log()
    assert len(re.findall("Workers keep dying", log)) == 1
    # Each death before the loop has its line; none after the one that started it.
    said = [pid for pid in kills if f"Worker [{pid}] was killed by SIGKILL after" in log]
    loop_line = re.search(r"Workers keep dying: \d+ deaths within 60 s, the latest worker "
                          r"\[(\d+)\] was killed by SIGKILL", log)  # fmt: skip
    assert loop_line and int(loop_line.group(1)) == kills[-1]
    assert said == kills[:-1] and f"[{quiet}]" not in log
    assert restarts_metric(server) == looped["restarts"]
    text = fetch(f"{server.url}/metrics")[2].decode()
    assert re.search(r"^critic_worker_crash_loop 1\.0$", text, re.M)
    assert fetch(f"{server.url}/ping")[0] == 200
