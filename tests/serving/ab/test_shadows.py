"""Shadows scored on the live answers' feedback: each shadow answer is kept under the live
answer's id, and a verdict on the live answer judges the shadow's too (a paired test)."""

import json
import time
import urllib.request

from critic.serving.ab.feedback import FeedbackStore
from critic.serving.ab.shadows import ShadowAnswerLog
from support.servers import running_server, wait_for


def test_a_verdict_on_the_live_answer_tells_whether_the_shadow_was_right(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    log = ShadowAnswerLog(store)
    # Four live answers (all positive) and the shadow's labels on them.
    log.offer("candidate", [("id1", "positive"), ("id2", "negative"), ("id3", "negative")])
    log.offer("candidate", [("id4", "positive")])
    log.flush()
    votes = [("id1", "right"), ("id2", "right"), ("id3", "wrong"), ("id4", "wrong")]
    for answer_id, verdict in votes:
        store.record(review="r", variant="champion", label="positive", feedback=verdict,
                     answer_id=answer_id)  # fmt: skip
    store.record(review="r", variant="other", label="positive", feedback="right", answer_id="x")
    shadow_right, live_right = store.shadow_pairs("candidate", "champion")
    # id1: both right. id2: the truth is positive, the shadow said negative: only live right.
    # id3: the truth is negative: only the shadow right. id4: both wrong.
    assert (shadow_right, live_right) == ([1, 0, 1, 0], [1, 1, 0, 0])
    assert store.shadow_pairs("candidate", "other") == ([], [])
    assert store.shadow_pairs("nobody", "champion") == ([], [])


def test_the_log_writes_what_is_left_when_it_stops_and_keeps_a_row_once(tmp_path):
    store = FeedbackStore(tmp_path / "f.sqlite")
    log = ShadowAnswerLog(store, seconds=3600)
    log.start()
    log.offer("candidate", [("a", "positive"), ("a", "positive")])
    log.stop()
    store.record(review="r", variant="v", label="positive", feedback="right", answer_id="a")
    assert store.shadow_pairs("candidate", "v") == ([1], [1])


def fetch_json(url, data=None, headers=None):
    request = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


REVIEWS = [
    "A wonderful film, moving and beautifully acted.",
    "Dull, far too long and badly written.",
    "I laughed all the way through; a delight.",
    "The plot made no sense and the ending was worse.",
    "Not bad, but not good either: a forgettable evening.",
    "One of the best I have seen this year.",
]


def test_through_a_real_server_a_shadow_is_decided_on_the_champions_votes(
    trained_bundle, nbsvm_bundle, tmp_path
):
    feedback = tmp_path / "feedback.sqlite"
    with running_server(
        ["serve", trained_bundle, "--shadow", f"candidate={nbsvm_bundle}",
         "--shadow-queue", "1000", "--feedback-db", feedback]
    ) as server:  # fmt: skip
        sent = 0
        for round_ in range(10):
            for review in REVIEWS:
                answer = fetch_json(
                    f"{server.url}/invocations",
                    json.dumps({"review": f"{review} ({round_})"}).encode(),
                    {"Content-Type": "application/json"},
                )
                (prediction,) = answer["predictions"]
                vote = {"review": review, "variant": answer["variant"],
                        "label": prediction["label"], "feedback": "right",
                        "answer_id": prediction["id"]}  # fmt: skip
                fetch_json(f"{server.url}/api/feedback", json.dumps(vote).encode(),
                           {"Content-Type": "application/json"})  # fmt: skip
                sent += 1

        def settled():
            (shadow,) = fetch_json(f"{server.url}/api/ab/shadows")["shadows"]
            return shadow if shadow["answered"] == sent else None

        shadow_view = wait_for(settled)
        # Every live answer was marked right: the shadow is right exactly where it agreed.
        disagreed = round(sent * (1 - shadow_view["agreement"]))

        def scored():
            decision = fetch_json(f"{server.url}/api/ab/decision")
            (entry,) = decision["shadows"]
            return decision if entry["reviews"] == sent else None

        time.sleep(0.5)
        decision = wait_for(scored, 30)  # the shadow's answers reach the file within a second
    (entry,) = decision["shadows"]
    assert entry["shadow"] == "candidate" and entry["against"] == decision["champion"]
    assert (entry["shadow_won"], entry["live_won"]) == (0, disagreed)
    assert entry["accuracy"] == {"shadow": (sent - disagreed) / sent, "live": 1.0}
    assert entry["difference"] == -disagreed / sent
    assert "reviews_still_needed" in entry and "paired" in decision["paired_method"]
    if disagreed >= 10:
        assert entry["verdict"] == "champion better"
