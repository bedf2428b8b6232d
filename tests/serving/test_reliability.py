"""The endpoint under overload, abandoned requests and shutdown: a real `critic serve` on a
loopback port, real sockets, real signals, a real SQLite file. Every loop is bounded."""

import http.client
import json
import re
import signal
import socket
import sqlite3
import threading
import time
import urllib.request

import pytest

from support.servers import running_server, start_server

REVIEW = "A moving story, a superb cast and a score I still hum; the ending is a little long."


def serving(bundle, tmp_path, **environment):
    """How to start ``critic serve BUNDLE`` with its feedback in tmp_path/feedback.sqlite and
    settings given as CRITIC_ variables (max_queue=150: CRITIC_MAX_QUEUE=150): the options of
    running_server and start_server."""
    return {
        "args": ["serve", bundle, "--feedback-db", tmp_path / "feedback.sqlite"],
        "env": {f"CRITIC_{k.upper()}": str(v) for k, v in environment.items()},
    }


def post(port, body, content_type="application/json", path="/invocations", timeout=60):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    connection.request("POST", path, body=body, headers={"Content-Type": content_type})
    response = connection.getresponse()
    answer = (response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    connection.close()
    return (*answer, time.perf_counter() - started)


def hundred_reviews() -> bytes:
    return json.dumps({"instances": [f"{REVIEW} Take {n}." for n in range(100)]}).encode()


def test_overload_is_refused_at_once_with_retry_after_and_ping_stays_quick(
    trained_bundle, tmp_path
):
    answers, pings = [], []
    body = hundred_reviews()
    done = threading.Event()
    with running_server(**serving(trained_bundle, tmp_path, max_queue=150)) as server:

        def client():
            # Six requests each, and on until the pinger has ten pings: a median of the two
            # pings a quick burst leaves time for is one slow ping's word (a flaky failure).
            deadline = time.monotonic() + 60
            sent = 0
            while sent < 6 or (len(pings) < 10 and time.monotonic() < deadline):
                answers.append(post(server.port, body))
                sent += 1

        def pinger():
            while not done.is_set():
                started = time.perf_counter()
                with urllib.request.urlopen(f"{server.url}/ping", timeout=10) as response:
                    assert response.status == 200
                pings.append(time.perf_counter() - started)
                time.sleep(0.02)

        ping_thread = threading.Thread(target=pinger)
        ping_thread.start()
        clients = [threading.Thread(target=client) for _ in range(12)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(timeout=120)
        done.set()
        ping_thread.join(timeout=30)
    statuses = [status for status, *_ in answers]
    assert len(statuses) >= 72 and set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses.count(200) >= 2 and statuses.count(503) >= 2
    for status, headers, payload, seconds in answers:
        if status == 503:
            assert re.fullmatch(r"[1-9]\d*", headers["retry-after"])
            assert "at capacity" in json.loads(payload)["message"]
            assert seconds < 2.0  # refused at once, not after waiting in a queue
    assert len(pings) >= 10 and sorted(pings)[len(pings) // 2] < 0.1, pings


def test_requests_whose_clients_left_are_not_computed(trained_bundle, tmp_path):
    big = json.dumps({"instances": [REVIEW] * 1000}).encode()
    with running_server(**serving(trained_bundle, tmp_path, max_reviews=1000)) as server:
        port = server.port
        busy = threading.Thread(target=post, args=(port, big))
        busy.start()
        time.sleep(0.05)
        # Twenty clients send 100 reviews each and hang up before any answer.
        body = hundred_reviews()
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(
                    b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
        busy.join(timeout=120)
        time.sleep(0.5)
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    computed = float(
        re.search(r'critic_batch_reviews_sum\{variant="AllTraffic"\} (\S+)', metrics)[1]
    )
    # The 1,000 of the request that waited, and none (or, racing the hang-up, a few) of the
    # 2,000 abandoned ones.
    assert 1000 <= computed <= 1300, computed


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_finishes_the_requests_in_flight_keeps_the_feedback_and_exits_0(
    trained_bundle, tmp_path, workers
):
    server = start_server(
        **serving(trained_bundle, tmp_path, max_reviews=1000, max_queue=5000, workers=workers)
    )
    port = server.port
    answers = []
    # Long enough to be in flight when the signal comes, with one worker or two.
    body = json.dumps({"instances": [" ".join([REVIEW] * 8)] * 1000}).encode()
    try:
        _, _, payload, _ = post(port, REVIEW.encode(), "text/plain")
        (prediction,) = json.loads(payload)["predictions"]
        vote = {"review": REVIEW, "variant": "AllTraffic", "label": prediction["label"],
                "feedback": "right", "answer_id": prediction["id"]}  # fmt: skip
        assert post(port, json.dumps(vote).encode(), path="/api/feedback")[0] == 201
        clients = [
            threading.Thread(target=lambda: answers.append((*post(port, body), time.monotonic())))
            for _ in range(4)
        ]
        for thread in clients:
            thread.start()
        time.sleep(0.3)  # the requests are in flight
        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        took = time.monotonic() - sent
        for thread in clients:
            thread.join(timeout=30)
    finally:
        server.stop()
    assert code == 0, server.log()
    assert took < 25
    assert [status for status, *_ in answers] == [200] * 4
    assert all(len(json.loads(p)["predictions"]) == 1000 for _, _, p, _, _ in answers)
    # Answered after the signal: they were in flight when it came.
    assert max(finished for *_, finished in answers) > sent
    with sqlite3.connect(tmp_path / "feedback.sqlite") as connection:
        rows = connection.execute("SELECT answer_id, feedback FROM feedback").fetchall()
    assert rows == [(prediction["id"], "right")]


def test_feedback_answered_201_survives_a_kill_9_straight_after(trained_bundle, tmp_path):
    server = start_server(**serving(trained_bundle, tmp_path))
    port = server.port
    try:
        ids = []
        for _ in range(5):
            _, _, payload, _ = post(port, REVIEW.encode(), "text/plain")
            (prediction,) = json.loads(payload)["predictions"]
            vote = {"review": REVIEW, "variant": "AllTraffic", "label": prediction["label"],
                    "feedback": "wrong", "answer_id": prediction["id"]}  # fmt: skip
            assert post(port, json.dumps(vote).encode(), path="/api/feedback")[0] == 201
            ids.append(prediction["id"])
        server.process.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    finally:
        server.stop()
    with sqlite3.connect(tmp_path / "feedback.sqlite") as connection:
        stored = [
            row[0] for row in connection.execute("SELECT answer_id FROM feedback ORDER BY id")
        ]
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert stored == ids


@pytest.mark.parametrize(("size", "status"), [(6 * 1024 * 1024, 200), (6 * 1024 * 1024 + 1, 413)])
def test_a_body_of_exactly_six_mib_is_read_and_one_byte_more_is_413(
    trained_bundle, tmp_path, size, status
):
    head = b'{"instances": ["'
    tail = b'"]}'
    body = head + (b"good film " * size)[: size - len(head) - len(tail)] + tail
    assert len(body) == size
    with running_server(**serving(trained_bundle, tmp_path)) as server:
        answer = post(server.port, body)
    assert answer[0] == status, answer[2][:200]
