"""The DynamoDB feedback store against moto's server: the SQLite store's contract, one vote
per answer however many servers receive it, counts that add up under concurrent writers, and
two real `critic serve` processes deciding over the same votes."""

from __future__ import annotations

import json
import math
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest

from critic.errors import CriticError
from critic.serving.ab.answers import AnswerIds
from critic.serving.ab.dynamodb import (
    DynamoCountStore,
    DynamoFeedbackStore,
    create_table,
    delete_table,
    parse_url,
)
from critic.serving.ab.feedback import DuplicateFeedback, FeedbackError, FeedbackStore
from support.aws import moto_environment
from support.cli import run_cli
from support.feedback import post_vote
from support.servers import running_server, wait_for

_TABLES = iter(range(1000))


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory):
    """moto answering one request at a time (see support.aws.moto_environment)."""
    yield from moto_environment(tmp_path_factory, threaded=False)


@pytest.fixture
def table(moto_url):
    name = f"critic-feedback-{next(_TABLES)}"
    create_table(name)
    return f"dynamodb://{name}"


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request, tmp_path, moto_url):
    """Each backend, for the contract they share."""
    if request.param == "sqlite":
        return FeedbackStore(tmp_path / "feedback.sqlite")
    name = f"critic-contract-{next(_TABLES)}"
    create_table(name)
    return DynamoFeedbackStore(f"dynamodb://{name}")


def vote(store, variant="champion", verdict="right", answer_id=None, share=0.5, **extra):
    answers = AnswerIds(store.answer_key)
    answer_id = answer_id or answers.issue(variant, "positive", share)
    return store.record(
        review="A fine film.",
        variant=variant,
        label="positive",
        feedback=verdict,
        answer_id=answer_id,
        share=share,
        **extra,
    )


def test_both_stores_keep_votes_in_order_with_their_shares_and_tallies(store):
    first = vote(store, "champion", "right", model="nbsvm", probability=0.9, rating=8)
    vote(store, "challenger", "wrong", share=0.25)
    mark = store.last_id()
    vote(store, "champion", "wrong", pinned=True, share=None)
    assert store.last_id() > mark > first

    every = store.votes(["champion", "challenger"])
    assert every.variants == ["champion", "challenger", "champion"]
    assert every.right == [1, 0, 0]
    assert every.shares[:2] == [0.5, 0.25] and math.isnan(every.shares[2])
    assert every.pinned == [False, False, True]
    later = store.votes(["champion"], after=mark)
    assert later.variants == ["champion"] and later.right == [0]

    summary = {row["variant"]: row for row in store.summary(["champion", "other"])}
    assert (summary["champion"]["feedback"], summary["champion"]["right"]) == (2, 1)
    assert summary["other"]["feedback"] == 0 and summary["other"]["accuracy"] is None
    assert summary["challenger"]["wrong"] == 1
    newest = store.rows(limit=2)
    assert [row["variant"] for row in newest] == ["champion", "challenger"]
    oldest = store.rows()[-1]
    assert (oldest["model"], oldest["probability"], oldest["rating"]) == ("nbsvm", 0.9, 8)


def test_both_stores_take_one_vote_per_answer_and_refuse_a_bad_verdict(store):
    answer_id = AnswerIds(store.answer_key).issue("champion", "positive", 0.5)
    vote(store, answer_id=answer_id)
    with pytest.raises(DuplicateFeedback):
        vote(store, answer_id=answer_id, verdict="wrong")
    with pytest.raises(FeedbackError, match="feedback must be one of right, wrong"):
        vote(store, verdict="maybe")
    assert store.summary(["champion"])[0]["feedback"] == 1


def test_every_server_on_a_table_shares_one_answer_key_and_sees_every_vote(table):
    here, there = DynamoFeedbackStore(table), DynamoFeedbackStore(table)
    assert here.answer_key == there.answer_key and len(here.answer_key) == 32
    answer_id = AnswerIds(here.answer_key).issue("champion", "positive", 0.5)
    assert AnswerIds(there.answer_key).check(answer_id, "champion", "positive")
    vote(here, answer_id=answer_id)
    with pytest.raises(DuplicateFeedback):  # the same answer, voted on elsewhere
        vote(there, answer_id=answer_id)
    vote(there)
    assert here.votes(["champion"]).variants == ["champion", "champion"]
    # A store reads only what is new, and still gives every vote.
    vote(there, "challenger")
    assert len(here.votes(["champion", "challenger"]).variants) == 3


def test_two_hundred_concurrent_votes_on_two_stores_are_all_counted_once(table):
    stores = [DynamoFeedbackStore(table), DynamoFeedbackStore(table)]
    answers = AnswerIds(stores[0].answer_key)
    ids = [answers.issue("champion", "positive", 0.5) for _ in range(100)]
    # Each answer voted on twice at once, through each store: one of the two wins.
    attempts = [(stores[n % 2], answer_id) for answer_id in ids for n in range(2)]
    outcomes = []

    def attempt(item):
        target, answer_id = item
        try:
            return vote(target, answer_id=answer_id)
        except DuplicateFeedback:
            return None

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(attempt, attempts))
    numbers = [number for number in outcomes if number is not None]
    assert len(numbers) == 100 and len(set(numbers)) == 100
    assert stores[1].summary(["champion"])[0]["feedback"] == 100
    assert len(stores[0].votes(["champion"]).variants) == 100


def test_online_counts_add_up_across_processes_and_runs(table):
    store = DynamoFeedbackStore(table)
    earlier = DynamoCountStore(store, "run-1")
    earlier.add({"champion": {"requests": 3.0, "le=0.005": 2.0}})
    now = [DynamoCountStore(DynamoFeedbackStore(table), "run-2") for _ in range(2)]

    def flush(counts):
        for _ in range(50):
            counts.add({"champion": {"requests": 1.0}, "challenger": {"errors": 0.0}})

    threads = [threading.Thread(target=flush, args=(counts,)) for counts in now]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert DynamoCountStore(store, "run-3").earlier() == {
        "champion": {"requests": 103.0, "le=0.005": 2.0}
    }
    assert now[0].earlier() == {"champion": {"requests": 3.0, "le=0.005": 2.0}}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dynamodb://", "is not a DynamoDB table"),
        ("dynamodb://a b", "is not a DynamoDB table"),
        ("dynamodb://table?size=3", "unknown setting 'size'"),
    ],
)
def test_a_bad_table_setting_is_one_line(spec, message):
    with pytest.raises(CriticError, match=message):
        parse_url(spec)


def test_a_table_that_does_not_exist_says_how_to_make_it(moto_url):
    with pytest.raises(FeedbackError) as error:
        DynamoFeedbackStore("dynamodb://no-such-table")
    assert "critic sagemaker feedback-table create" in str(error.value)
    assert "\n" not in str(error.value)


def test_the_region_may_ride_on_the_url(moto_url):
    assert parse_url("dynamodb://votes?region=eu-west-1") == ("votes", "eu-west-1")
    create_table("elsewhere", region="eu-west-1")
    assert DynamoFeedbackStore("dynamodb://elsewhere?region=eu-west-1").answer_key
    client = boto3.session.Session().client("dynamodb", region_name="eu-west-1")
    assert (
        client.describe_table(TableName="elsewhere")["Table"]["BillingModeSummary"]["BillingMode"]
        == "PAY_PER_REQUEST"
    )
    delete_table("elsewhere", region="eu-west-1")
    assert "elsewhere" not in client.list_tables()["TableNames"]


# --- two servers, one table --------------------------------------------------------------------


def ask(server, review):
    request = urllib.request.Request(
        f"{server.url}/invocations",
        json.dumps({"text": review}).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        variant = response.headers["X-Amzn-Invoked-Production-Variant"]
        return variant, json.loads(response.read())["predictions"][0]


def feedback_seen(server):
    with urllib.request.urlopen(f"{server.url}/api/ab", timeout=30) as response:
        answer = json.loads(response.read())
    return {v["name"]: (v["feedback"] or {}).get("feedback", 0) for v in answer["variants"]}


def test_two_servers_on_one_table_decide_over_every_vote(table, nbsvm_bundle, moto_url):
    command = ["serve", "--variant", f"champion={nbsvm_bundle}:1",
               "--variant", f"challenger={nbsvm_bundle}:1", "--feedback-db", table,
               "--workers", "1"]  # fmt: skip
    with running_server(command) as first, running_server(command) as second:
        cast = []
        for number in range(20):
            variant, prediction = ask(first if number % 2 else second, f"Review {number}, fine.")
            # Each vote goes to the other server: it must recognise the answer's id.
            target = second if number % 2 else first
            assert post_vote(target.url, variant, prediction, verdict="right") == 201
            cast.append((variant, prediction))
        variant, prediction = cast[0]
        assert post_vote(first.url, variant, prediction) == 409  # voted already, elsewhere
        assert post_vote(second.url, variant, prediction) == 409
        forged = {
            **prediction,
            "label": "negative" if prediction["label"] == "positive" else "positive",
        }
        assert post_vote(first.url, variant, forged) == 403
        # 100 more answers, each voted on through both servers at once (200 votes on two
        # processes, 8 at a time): each answer counted once.
        answers = [
            ask(first if number % 2 else second, f"Another {number}.") for number in range(100)
        ]
        with ThreadPoolExecutor(8) as pool:
            statuses = list(
                pool.map(
                    lambda job: post_vote(job[0].url, *job[1]),
                    [(server, answer) for answer in answers for server in (first, second)],
                )
            )
        assert sorted(statuses) == [201] * 100 + [409] * 100
        cast += answers
        expected = {name: sum(v == name for v, _ in cast) for name in ("champion", "challenger")}
        assert feedback_seen(first) == feedback_seen(second) == expected
        assert sum(expected.values()) == 120

    # A restart loses nothing: the votes, and the ids it gave before.
    with running_server(command) as again:
        assert feedback_seen(again) == expected
        variant, prediction = cast[1]
        assert post_vote(again.url, variant, prediction) == 409
        wait_for(lambda: feedback_seen(again) == expected, 5)
    assert not Path("dynamodb:").exists()  # the setting was never taken for a file's path


def test_the_tables_votes_are_ground_truth_for_the_quality_report(table, tmp_path):
    from critic.monitor.ground_truth import read_ground_truth

    store = DynamoFeedbackStore(table)
    answers = AnswerIds(store.answer_key)
    right, wrong = (answers.issue("champion", "positive", 0.5) for _ in range(2))
    vote(store, answer_id=right, verdict="right")
    vote(store, answer_id=wrong, verdict="wrong")
    exported = run_cli("ground-truth", "export", table, "--to", tmp_path / "truth.jsonl")
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
    assert [
        (line["eventMetadata"]["eventId"], line["groundTruthData"]["data"]) for line in lines
    ] == [
        (right, "1"),
        (wrong, "0"),  # "wrong" on a positive answer: the review is negative
    ]
    assert read_ground_truth([table]) == {right: "positive", wrong: "negative"}


def test_the_feedback_table_commands_make_and_remove_a_table(moto_url):
    made = run_cli("sagemaker", "feedback-table", "create", "critic-cli-votes")
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout.splitlines()[-1])["feedback_db"] == "dynamodb://critic-cli-votes"
    again = run_cli("sagemaker", "feedback-table", "create", "dynamodb://critic-cli-votes")
    assert again.returncode == 1 and "ResourceInUseException" in again.stderr
    assert "Traceback" not in again.stderr and len(again.stderr.strip().splitlines()) == 1
    gone = run_cli("sagemaker", "feedback-table", "delete", "critic-cli-votes", "--yes")
    assert gone.returncode == 0, gone.stderr
    client = boto3.session.Session().client("dynamodb")
    assert "critic-cli-votes" not in client.list_tables()["TableNames"]


def test_a_vote_costs_two_requests_and_a_refresh_reads_only_what_is_new(table):
    """The figures the README prices: DynamoDB requests per vote and per A/B refresh."""
    store = DynamoFeedbackStore(table)
    sent: list[str] = []
    store._client.meta.events.register(
        "before-send.dynamodb.*", lambda request, **_: sent.append(request.headers["X-Amz-Target"])
    )
    vote(store)
    assert [target.decode().split(".")[-1] for target in sent] == [
        "UpdateItem",
        "TransactWriteItems",
    ]
    sent.clear()
    store.summary(["champion"])
    store.votes(["champion"])
    assert [target.decode().split(".")[-1] for target in sent] == ["Query", "Query"]
    sent.clear()
    store.votes(["champion"])  # nothing new: one query, which returns nothing
    assert len(sent) == 1
