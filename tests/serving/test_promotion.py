"""A shadow promoted to a live variant while a real two-worker `critic serve` runs: every
worker loads it and answers with it, no restart; the admin token guards it."""

import json
import os
import time
import urllib.error
import urllib.request

import pytest

from support.servers import TWO_CORES, from_every_worker, two_worker_server, wait_for

TOKEN = "promotion-admin-token"

pytestmark = pytest.mark.skipif(len(TWO_CORES) < 2, reason="needs two cores: a worker each")


def call(url, data=None, headers=None):
    """(status, parsed JSON body), an HTTP error's too."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def server(trained_bundle, nbsvm_bundle, tmp_path_factory):
    feedback = tmp_path_factory.mktemp("promotion") / "feedback.sqlite"
    with two_worker_server(
        ["serve", "--variant", f"champion={trained_bundle}:1", "--shadow",
         f"candidate={nbsvm_bundle}", "--feedback-db", feedback, "--workers", "2"],
        env={"CRITIC_ADMIN_TOKEN": TOKEN},
    ) as server:  # fmt: skip
        yield server


def promote(server, name, token=TOKEN, body=b"{}"):
    return call(f"{server.url}/admin/shadows/{name}/promote", body,
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})  # fmt: skip


def every_worker(server):
    seen = from_every_worker(server.url)
    assert len(seen) == 2, "the second worker never answered"
    return seen


def test_a_wrong_token_or_an_unknown_shadow_changes_nothing(server):
    status, body = promote(server, "candidate", token="wrong")
    assert status == 401 and "admin token" in body["message"]
    status, body = promote(server, "nobody")
    assert status == 404 and "shadows: candidate" in body["message"]
    status, _ = promote(server, "candidate", body=b'{"weight": -1}')
    assert status == 400
    for variants in every_worker(server).values():
        assert [v["name"] for v in variants["variants"]] == ["champion"]


def test_a_promoted_shadow_answers_from_every_worker_without_a_restart(server):
    pids_before = {p["pid"] for p in call(f"{server.url}/variants")[1]["workers"]["processes"]}
    status, body = promote(server, "candidate", body=b'{"weight": 1}')
    assert status == 200, body
    assert body["promoted"] == "candidate" and body["shares"] == {"champion": 0.5, "candidate": 0.5}

    def both_have_it():
        seen = every_worker(server)
        return all(
            {v["name"]: v["weight"] for v in variants["variants"]}
            == {"champion": 1.0, "candidate": 1.0}
            for variants in seen.values()
        )

    wait_for(both_have_it, 90, every=0.5)
    # It answers, named or drawn; the shadow that it was is gone from every worker.
    answered = set()
    for _ in range(40):
        status, answer = call(
            f"{server.url}/invocations",
            json.dumps({"review": "A fine, moving film."}).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 200
        answered.add(answer["variant"])
    assert answered == {"champion", "candidate"}
    status, answer = call(
        f"{server.url}/invocations", b"Dull.",
        {"Content-Type": "text/plain", "X-Amzn-SageMaker-Target-Variant": "candidate"},
    )  # fmt: skip
    assert status == 200 and answer["model"] == "nbsvm"
    # The A/B view gathers the other workers' snapshots as they last published them (every
    # few seconds): the shadow leaves it once each has published since the promotion.
    wait_for(lambda: call(f"{server.url}/api/ab/shadows")[1]["shadows"] == [], 30, every=0.5)
    # No worker was restarted for it, and a second promotion is refused.
    pids_after = {p["pid"] for p in call(f"{server.url}/variants")[1]["workers"]["processes"]}
    assert pids_after == pids_before
    status, body = promote(server, "candidate")
    assert status == 409 and "already" in body["message"]


def test_a_worker_restarted_after_the_promotion_loads_the_promoted_variant(server):
    import signal

    described = call(f"{server.url}/variants")[1]["workers"]
    victim = described["processes"][0]["pid"]
    os.kill(victim, signal.SIGKILL)

    def replaced():
        workers = call_retrying(f"{server.url}/variants")["workers"]
        pids = {p["pid"] for p in workers["processes"]}
        return pids if victim not in pids and len(pids) == 2 else None

    (new,) = wait_for(replaced, 60) - {p["pid"] for p in described["processes"]}

    def new_worker_has_it():
        variants = every_worker(server).get(new)
        names = {v["name"]: v["weight"] for v in (variants or {}).get("variants", [])}
        return names == {"champion": 1.0, "candidate": 1.0}

    wait_for(new_worker_has_it, 90, every=0.5)


def call_retrying(url):
    """GET, asked again when the connection was one a killed worker held."""
    for attempt in range(5):
        try:
            return call(url)[1]
        except (urllib.error.URLError, ConnectionError):
            if attempt == 4:
                raise
            time.sleep(0.2)
