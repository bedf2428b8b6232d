import asyncio
import itertools
import threading

import pytest

from critic.serving.batching import (
    GONE_CHECK_AFTER_S,
    ClientGone,
    DeadlineExceeded,
    MicroBatcher,
    Overloaded,
    Stopping,
)


def run(coroutine):
    return asyncio.run(coroutine)


def test_concurrent_requests_share_one_forward_pass_and_get_their_own_answers():
    calls = []

    def predict(reviews):
        calls.append(list(reviews))
        return [{"review": r} for r in reviews]

    async def scenario():
        batcher = MicroBatcher(predict, max_batch=64, max_wait_ms=50)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit([f"r{i}", f"s{i}"]) for i in range(10)))
        await batcher.stop()
        return results

    results = run(scenario())
    assert results == [[{"review": f"r{i}"}, {"review": f"s{i}"}] for i in range(10)]
    assert len(calls) < 10  # gathered
    assert sum(len(c) for c in calls) == 20


def test_a_batch_never_exceeds_the_limit():
    sizes = []

    def predict(reviews):
        sizes.append(len(reviews))
        return [{} for _ in reviews]

    async def scenario():
        batcher = MicroBatcher(predict, max_batch=8, max_wait_ms=50)
        batcher.start()
        await asyncio.gather(*(batcher.submit(["x", "y", "z"]) for _ in range(10)))
        await batcher.submit(["a"] * 20)  # alone larger than a batch: runs straight away
        await batcher.stop()

    run(scenario())
    assert max(sizes[:-1]) <= 8 + 2  # a request is never split, so at most one over
    assert sizes[-1] == 20


def test_inference_runs_off_the_event_loop():
    threads = []

    def predict(reviews):
        threads.append(threading.current_thread().name)
        return [{} for _ in reviews]

    async def scenario():
        batcher = MicroBatcher(predict, name="champion")
        batcher.start()
        await batcher.submit(["x"])
        await batcher.stop()
        return threading.current_thread().name

    loop_thread = run(scenario())
    assert threads and threads[0] != loop_thread and threads[0].startswith("critic-champion")


def test_a_broken_model_fails_each_waiting_request_and_the_batcher_goes_on():
    state = {"broken": True}

    def predict(reviews):
        if state["broken"]:
            raise RuntimeError("model broke")
        return [{"ok": True} for _ in reviews]

    async def scenario():
        batcher = MicroBatcher(predict, max_wait_ms=20)
        batcher.start()
        first = await asyncio.gather(
            batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True
        )
        state["broken"] = False
        second = await batcher.submit(["c"])
        await batcher.stop()
        return first, second

    first, second = run(scenario())
    assert all(isinstance(r, RuntimeError) for r in first)
    assert second == [{"ok": True}]


def test_a_request_that_breaks_the_model_fails_alone_and_its_batch_mates_are_answered():
    calls = []

    def predict(reviews):
        calls.append(list(reviews))
        if "bad" in reviews:
            raise RuntimeError("the model overflowed")
        return [{"review": review} for review in reviews]

    async def scenario():
        batcher = MicroBatcher(predict, max_wait_ms=50)
        batcher.start()
        answers = await asyncio.gather(
            batcher.submit(["a"]),
            batcher.submit(["bad", "c"]),
            batcher.submit(["d"]),
            return_exceptions=True,
        )
        await batcher.stop()
        return answers

    good, bad, other = run(scenario())
    assert good == [{"review": "a"}] and other == [{"review": "d"}]
    assert isinstance(bad, RuntimeError)
    # The batch failed once as a whole, then each request was computed alone.
    assert ["a", "bad", "c", "d"] in calls and calls[-3:] == [["a"], ["bad", "c"], ["d"]]


def test_a_lone_request_runs_at_once_without_waiting_for_company():
    calls = []

    def predict(reviews):
        calls.append(list(reviews))
        return [{} for _ in reviews]

    async def scenario():
        batcher = MicroBatcher(predict)  # the default: no wait
        batcher.reviews_per_second = 10_000  # measured pace: a lone review runs inline
        batcher.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.submit(["only"])
        elapsed = loop.time() - started
        await batcher.stop()
        return elapsed

    elapsed = run(scenario())
    assert calls == [["only"]]
    assert elapsed < 0.05


def test_requests_that_arrive_while_the_model_is_busy_share_the_next_pass():
    calls = []
    release = threading.Event()

    def predict(reviews):
        calls.append(list(reviews))
        if len(calls) == 1:
            release.wait(5)  # the model is busy with the first request
        return [{"review": r} for r in reviews]

    async def scenario():
        batcher = MicroBatcher(predict, max_batch=64)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(["first"]))
        await asyncio.sleep(0.05)
        others = [asyncio.ensure_future(batcher.submit([f"r{i}"])) for i in range(5)]
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(first, *others)
        await batcher.stop()
        return results

    results = run(scenario())
    assert calls == [["first"], ["r0", "r1", "r2", "r3", "r4"]]
    assert results[1:] == [[{"review": f"r{i}"}] for i in range(5)]


def busy_batcher(**options):
    """A batcher whose model is held busy until ``release`` is set."""
    release = threading.Event()
    computed = []

    def predict(reviews, explain=False):
        computed.extend(reviews)
        release.wait(5)
        return [{"review": r, "explained": explain} for r in reviews]

    return MicroBatcher(predict, **options), release, computed


def test_a_full_queue_refuses_at_once_with_the_time_to_drain_it():
    async def scenario():
        batcher, release, _ = busy_batcher(max_queue=10)
        batcher.start()
        batcher.reviews_per_second = 4.0
        held = [asyncio.ensure_future(batcher.submit(["a"] * 5)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded, match="at capacity") as refused:
            await batcher.submit(["one too many"])
        release.set()
        answers = await asyncio.gather(*held)
        after = await batcher.submit(["room again"])
        await batcher.stop()
        return refused.value.retry_after, answers, after

    retry_after, answers, after = run(scenario())
    assert retry_after == 3  # 10 reviews queued at 4 reviews/s, rounded up
    assert [len(a) for a in answers] == [5, 5]
    assert after == [{"review": "room again", "explained": False}]


def test_a_request_whose_client_left_is_dropped_before_it_is_computed():
    asked = []

    async def gone():
        asked.append(True)
        return True

    async def scenario():
        batcher, release, computed = busy_batcher()
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(["first"]))
        await asyncio.sleep(0.05)
        abandoned = asyncio.ensure_future(batcher.submit(["abandoned"], is_disconnected=gone))
        kept = asyncio.ensure_future(batcher.submit(["kept"]))
        await asyncio.sleep(GONE_CHECK_AFTER_S + 0.05)  # it waited long enough to be asked
        release.set()
        results = await asyncio.gather(first, abandoned, kept, return_exceptions=True)
        await batcher.stop()
        return results, computed

    (_, abandoned, kept), computed = run(scenario())
    assert isinstance(abandoned, ClientGone) and asked == [True]
    assert computed == ["first", "kept"]
    assert kept == [{"review": "kept", "explained": False}]


def test_a_request_queued_only_a_moment_is_computed_without_asking_for_its_client():
    asked = []

    async def gone():
        asked.append(True)
        return True

    async def scenario():
        batcher, release, computed = busy_batcher(gone_check_after_s=10.0)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(["first"]))
        await asyncio.sleep(0.05)
        brief = asyncio.ensure_future(batcher.submit(["brief"], is_disconnected=gone))
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(first, brief)
        await batcher.stop()
        return results, computed

    (_, brief), computed = run(scenario())
    assert asked == [] and computed == ["first", "brief"]
    assert brief == [{"review": "brief", "explained": False}]


def test_a_request_past_its_deadline_is_answered_and_never_computed():
    async def scenario():
        batcher, release, computed = busy_batcher(timeout_s=0.1)
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(["first"]))
        await asyncio.sleep(0.02)
        late = asyncio.ensure_future(batcher.submit(["late"]))
        # The first pass outlives both deadlines: each caller is told, and the slots are free
        # again while the model is still busy.
        for request in (first, late):
            with pytest.raises(DeadlineExceeded):
                await request
        assert batcher.queued == 0
        release.set()
        await batcher.stop()
        return computed

    assert run(scenario()) == ["first"]


def test_an_explanation_never_stalls_the_plain_requests_behind_it():
    release = threading.Event()

    def predict(reviews, explain=False):
        if explain:
            release.wait(5)  # a slow backward pass
        return [{"review": r, "explained": explain} for r in reviews]

    async def scenario():
        batcher = MicroBatcher(predict)
        batcher.start()
        slow = asyncio.ensure_future(batcher.submit(["why?"], explain=True))
        await asyncio.sleep(0.02)
        plain = await asyncio.wait_for(
            asyncio.gather(*(batcher.submit([f"r{i}"]) for i in range(5))), 2
        )
        assert not slow.done()
        release.set()
        explained = await slow
        await batcher.stop()
        return plain, explained

    plain, explained = run(scenario())
    assert [p[0]["review"] for p in plain] == [f"r{i}" for i in range(5)]
    assert explained == [{"review": "why?", "explained": True}]


def test_stopping_answers_what_is_queued_and_refuses_what_comes_after():
    async def scenario():
        batcher, release, _ = busy_batcher()
        batcher.start()
        queued = [asyncio.ensure_future(batcher.submit([f"r{i}"])) for i in range(3)]
        await asyncio.sleep(0.05)
        stopping = asyncio.ensure_future(batcher.stop())
        await asyncio.sleep(0.02)
        with pytest.raises(Stopping):
            await batcher.submit(["too late"])
        release.set()
        await stopping
        return await asyncio.gather(*queued)

    assert [a[0]["review"] for a in run(scenario())] == ["r0", "r1", "r2"]


def test_batched_answers_equal_one_at_a_time_answers(trained_bundle):
    from critic.inference.predictor import Predictor

    predictor = Predictor.load(trained_bundle)
    reviews = [f"{word} film, {n} stars and a {word} ending." for n, word in
               enumerate(["great", "awful", "dull", "moving", "brilliant", "weak"] * 4)]  # fmt: skip
    alone = [predictor.predict(review) for review in reviews]

    async def scenario():
        batcher = MicroBatcher(predictor.predict, max_batch=8)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit([review]) for review in reviews))
        await batcher.stop()
        return [answer[0] for answer in answers]

    batched = run(scenario())
    for one, together in zip(alone, batched, strict=True):
        assert one["label"] == together["label"]
        assert one["probability"] == pytest.approx(together["probability"], abs=1e-6)
        assert one["rating"] == together["rating"]


def test_a_model_that_holds_the_gil_runs_on_the_loop_in_slices_with_turns_between():
    events = []

    def predict(reviews):
        events.append(("pass", len(reviews), threading.get_ident()))
        return [{"review": review} for review in reviews]

    async def ticker(stop: asyncio.Event):
        while not stop.is_set():
            events.append(("tick",))
            await asyncio.sleep(0)

    async def scenario():
        batcher = MicroBatcher(predict, max_batch=4, threaded=False)
        batcher.start()
        stop = asyncio.Event()
        ticking = asyncio.create_task(ticker(stop))
        answers = await batcher.submit([f"r{i}" for i in range(10)])
        stop.set()
        await ticking
        await batcher.stop()
        return answers, threading.get_ident()

    answers, loop_thread = run(scenario())
    assert [answer["review"] for answer in answers] == [f"r{i}" for i in range(10)]
    passes = [event for event in events if event[0] == "pass"]
    assert [size for _, size, _ in passes] == [4, 4, 2]
    assert {thread for _, _, thread in passes} == {loop_thread}  # no thread hand-off
    # Between two slices the loop took a turn: the ticker ran.
    positions = [i for i, event in enumerate(events) if event[0] == "pass"]
    for before, after in itertools.pairwise(positions):
        assert any(event == ("tick",) for event in events[before + 1 : after])
