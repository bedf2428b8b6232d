import asyncio
import threading

from critic.serving.batching import MicroBatcher


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


def test_a_failing_model_fails_each_waiting_request_and_the_batcher_goes_on():
    state = {"fail": True}

    def predict(reviews):
        if state["fail"]:
            state["fail"] = False
            raise RuntimeError("model broke")
        return [{"ok": True} for _ in reviews]

    async def scenario():
        batcher = MicroBatcher(predict, max_wait_ms=20)
        batcher.start()
        first = await asyncio.gather(
            batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True
        )
        second = await batcher.submit(["c"])
        await batcher.stop()
        return first, second

    first, second = run(scenario())
    assert all(isinstance(r, RuntimeError) for r in first)
    assert second == [{"ok": True}]
