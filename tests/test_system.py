"""Facts about the machine, and the floating-point mode training sets for itself."""

import os
import subprocess
import sys
import time

import pytest
import torch

from critic.errors import CriticError
from critic.system import (
    ThreadGovernor,
    available_cores,
    free_share,
    keep_pace,
    subnormals_flushed,
)


def subnormal_survives() -> bool:
    return float(torch.tensor([2.0**-1070], dtype=torch.float64) * 2) != 0.0


def test_subnormals_are_flushed_inside_the_block_and_kept_again_after_it():
    assert subnormal_survives()
    with subnormals_flushed(torch.device("cpu")):
        assert not subnormal_survives()
    assert subnormal_survives()  # whatever runs next in the process gets IEEE floats back


def test_a_block_that_raises_still_gives_the_mode_back():
    try:
        with subnormals_flushed(torch.device("cpu")):
            raise RuntimeError("stopped")
    except RuntimeError:
        pass
    assert subnormal_survives()


def test_the_process_may_use_at_least_one_core():
    assert available_cores() >= 1


# --- threads on a shared machine ---------------------------------------------------------------

BUSY_LOOP = "import time\nend = time.time() + 60\nwhile time.time() < end:\n    pass\n"
TWO_CORES = sorted(os.sched_getaffinity(0))[:2]


def test_the_threads_are_the_cores_the_others_leave_rounded_half_down():
    assert [free_share(2, others) for others in (0.0, 0.4, 0.5, 0.6, 1.0, 1.6, 2.0, 5.0)] == [
        2, 2, 1, 1, 1, 1, 1, 1,
    ]  # fmt: skip
    assert free_share(8, 2.2) == 6 and free_share(1, 0.0) == 1


def test_a_forced_count_holds_and_nothing_adapts(monkeypatch):
    monkeypatch.delenv("CRITIC_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    lines: list[str] = []
    try:
        governor = ThreadGovernor(1, log=lines.append, every_s=0)
        assert governor.start() == 1 and torch.get_num_threads() == 1
        governor.check()
        assert torch.get_num_threads() == 1
        assert lines == ["train: 1 thread(s), as --threads says"]
        monkeypatch.setenv("CRITIC_THREADS", "1")
        assert ThreadGovernor(log=lines.append).start() == 1
        assert lines[-1] == "train: 1 thread(s), as CRITIC_THREADS says"
        monkeypatch.setenv("CRITIC_THREADS", "many")
        with pytest.raises(CriticError, match="CRITIC_THREADS must be a whole number"):
            ThreadGovernor()
    finally:
        torch.set_num_threads(before)


def busy_core(core: int) -> subprocess.Popen:
    """A process that holds ``core`` (and only it) for up to a minute."""
    return subprocess.Popen(
        [sys.executable, "-c", BUSY_LOOP], preexec_fn=lambda: os.sched_setaffinity(0, {core})
    )


# These two read how busy the cores are: make test runs them after the rest, one at a time
# (a test beside them on the other core would be the "other process").
@pytest.mark.alone
@pytest.mark.skipif(len(TWO_CORES) < 2, reason="needs two cores")
def test_the_threads_follow_the_cores_another_process_takes_and_gives_back(monkeypatch):
    monkeypatch.delenv("CRITIC_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    # This process and the busy one on the same two cores, as two jobs on a small machine.
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(TWO_CORES))
    before = torch.get_num_threads()
    lines: list[str] = []
    busy = busy_core(TWO_CORES[1])
    try:
        time.sleep(0.3)
        governor = ThreadGovernor(log=lines.append, every_s=0.2)
        assert governor.start() == 1, lines  # one core is taken: one thread, not two spinning
        assert "on 2 core(s); other processes use" in lines[0]
        busy.kill()
        busy.wait()
        deadline = time.monotonic() + 10
        while governor.threads != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            governor.check()
        assert governor.threads == 2 and torch.get_num_threads() == 2, lines
        assert lines[-1].startswith("train: 2 thread(s) from now, 1 before")
    finally:
        busy.kill()
        torch.set_num_threads(before)


@pytest.mark.alone
@pytest.mark.skipif(len(TWO_CORES) < 2, reason="needs two cores")
def test_a_long_prediction_sheds_a_thread_when_another_process_takes_a_core(
    monkeypatch, trained_bundle
):
    from critic.inference.predictor import Predictor

    monkeypatch.delenv("CRITIC_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(TWO_CORES))
    predictor = Predictor.load(trained_bundle)
    reviews = ["a slow start but a wonderful , moving ending ."] * 256
    before = torch.get_num_threads()
    lines: list[str] = []
    governor = ThreadGovernor(log=lines.append, what="evaluate", every_s=0.2)
    busy = None
    try:
        governor.start()
        # As it starts on an idle machine, whatever else this one is running now.
        governor.threads = 2
        torch.set_num_threads(2)
        busy = busy_core(TWO_CORES[1])
        deadline = time.monotonic() + 20
        # The scorer's batches call keep_pace: nothing here calls the governor itself.
        while governor.threads != 1 and time.monotonic() < deadline:
            predictor.predict_logits(reviews)
        assert governor.threads == 1 and torch.get_num_threads() == 1, lines
        assert lines[-1].startswith("evaluate: 1 thread(s) from now, 2 before")
        governor.stop()
        busy.kill()
        busy.wait()
        time.sleep(0.5)
        for _ in range(3):  # a run that has ended adapts no more
            predictor.predict_logits(reviews)
            time.sleep(0.25)
        assert governor.threads == 1 and torch.get_num_threads() == 1
    finally:
        governor.stop()
        if busy is not None:
            busy.kill()
        torch.set_num_threads(before)


def test_keep_pace_from_another_thread_leaves_the_count_alone(monkeypatch):
    import threading

    monkeypatch.delenv("CRITIC_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    governor = ThreadGovernor(log=lambda _: None, every_s=0)
    try:
        governor.start()
        looked = governor._next
        worker = threading.Thread(target=keep_pace)
        worker.start()
        worker.join()
        assert governor._next == looked  # the worker's call did not even look
        keep_pace()
        assert governor._next > looked  # the starting thread's call did
    finally:
        governor.stop()
        torch.set_num_threads(before)


def test_a_seed_gives_the_same_weights_for_a_thread_count(tmp_path, cache_dir):
    from critic.training.train import train
    from support.data import small_run_config

    config = small_run_config()
    runs = [
        train(config, tmp_path / name, cache_dir=cache_dir, progress=False, log=lambda _: None,
              threads=threads)
        for name, threads in (("a", 2), ("b", 2))
    ]  # fmt: skip
    first, second = (run.model.state_dict() for run in runs)
    assert all(torch.equal(first[name], second[name]) for name in first)
