"""Data-parallel training: ranks from torchrun's variables, batches split across ranks, and
real two-process runs on the CPU (gloo) started by torchrun."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from critic.data.batches import BucketedBatches, EncodedSplit
from critic.errors import CriticError
from critic.inference.bundle import save_training_result
from critic.inference.predictor import Predictor
from critic.training.checkpoints import CHECKPOINT_DIR
from critic.training.distributed import Processes, from_environment, shard
from critic.training.train import train
from support.data import small_nbsvm_config, small_run_config
from support.servers import free_port

SMALL = ["--max-reviews", "300", "--vocab-size", "2000", "--max-length", "200"]
SMALL += ["--batch-size", "32", "--device", "cpu", "--no-progress"]


def split_of(lengths: list[int]) -> EncodedSplit:
    reviews = [np.arange(1, n + 1, dtype=np.int32) for n in lengths]
    return EncodedSplit.from_lists(reviews, np.arange(len(lengths)) % 2, np.zeros(len(lengths)))


def test_without_torchrun_variables_training_is_one_process():
    assert from_environment({}) == Processes()
    assert not Processes().active and Processes().main


def test_torchrun_variables_give_the_rank_and_the_world():
    environ = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    processes = from_environment(environ)
    assert processes == Processes(rank=3, world_size=4, local_rank=1, local_world_size=2)
    assert processes.active and not processes.main


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' must be an integer"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 is outside WORLD_SIZE=2"),
    ],
)
def test_broken_torchrun_variables_are_a_clear_error(environ, message):
    with pytest.raises(CriticError, match=re.escape(message)):
        from_environment(environ)


def test_every_rank_takes_a_slice_of_every_batch_and_together_they_see_the_epoch():
    split = split_of([5, 80, 12, 40, 7, 33, 60, 2, 19, 25, 50, 9, 71])
    whole = BucketedBatches(split, 4, 100, pool_batches=2, seed=7)
    ranks = [BucketedBatches(split, 4, 100, pool_batches=2, seed=7, shard=(r, 2)) for r in (0, 1)]
    for batches in (whole, *ranks):
        batches.set_epoch(3)
    per_rank = [list(batches) for batches in ranks]
    # Same number of steps on every rank (DistributedDataParallel waits for all at each step).
    assert len(per_rank[0]) == len(per_rank[1]) == len(list(whole)) == len(whole)
    for batch, first, second in zip(whole, *per_rank, strict=True):
        together = sorted([*first.indices, *second.indices])
        if len(batch.indices) >= 2:  # (a lone review is given to both; see the next test)
            assert together == sorted(batch.indices)
        assert set(together) == set(batch.indices)


def test_a_last_batch_smaller_than_the_ranks_leaves_no_rank_empty():
    split = split_of([5, 8, 6, 7, 9])  # batches of 4: the last holds one review
    ranks = [BucketedBatches(split, 4, 100, shard=(r, 3)) for r in range(3)]
    for step in zip(*ranks, strict=True):
        assert all(len(batch.indices) >= 1 for batch in step)


def test_evaluation_shards_partition_a_split():
    split = split_of([3, 4, 5, 6, 7])
    shards = [shard(split, Processes(rank=r, world_size=2)) for r in (0, 1)]
    assert [len(s) for s in shards] == [3, 2]
    assert shard(split, Processes()) is split
    assert sorted(np.concatenate([s.lengths for s in shards])) == [3, 4, 5, 6, 7]


def test_nbsvm_refuses_to_train_under_torchrun_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(CriticError, match="fitted in one go by scikit-learn, in one process"):
        train(small_nbsvm_config(), tmp_path / "nbsvm", progress=False, log=lambda _: None)


def torchrun(*arguments: str, processes: int = 2, timeout: float = 300) -> str:
    """``critic train ARGUMENTS`` started by torchrun on this machine; its output."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
        "--nproc_per_node", str(processes), "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()), "-m", "critic.cli", "train", *arguments,
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, env={**os.environ}
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def checksums(output: str) -> dict[int, str]:
    """Each rank's weights checksum, as the ranks logged it at the end."""
    found = re.findall(r"rank (\d+) of 2: weights checksum ([0-9a-f]+)", output)
    return {int(rank): checksum for rank, checksum in found}


@pytest.mark.slow
def test_two_processes_train_one_bundle_with_the_same_weights_on_both(tmp_path, cache_dir):
    out = tmp_path / "run"
    output = torchrun("--out", str(out), "--cache-dir", str(cache_dir), "--epochs", "1", *SMALL)
    sums = checksums(output)
    assert set(sums) == {0, 1} and sums[0] == sums[1], output
    assert "data-parallel: 2 processes, 1 thread(s) each" in output  # 2 cores here, or more
    assert output.count("bundle: ") == 1  # rank 0 alone wrote one
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["epochs"] == 1
    assert not (out / CHECKPOINT_DIR).exists()
    answers = Predictor.load(out).predict(["A wonderful film.", "Dull and awful."])
    assert len(answers) == 2 and all(0 <= answer["probability"] <= 1 for answer in answers)


@pytest.mark.slow
def test_two_processes_train_adversarially_in_step(tmp_path, cache_dir):
    # attention's recipe trains adversarially: two forward and backward passes a step, each
    # backward all-reducing through DDP, and the ranks still end with the same weights.
    out = tmp_path / "run"
    arguments = ["--out", str(out), "--cache-dir", str(cache_dir), "--epochs", "1"]
    output = torchrun(*arguments, "--adversarial", "1", *SMALL)
    sums = checksums(output)
    assert set(sums) == {0, 1} and sums[0] == sums[1], output
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["adversarial"] == 1.0


@pytest.mark.slow
def test_two_processes_pretrain_a_language_model_and_end_in_step(tmp_path, cache_dir):
    # The language model's gradients are averaged by hand, not by a second DDP: one left on the
    # shared embedding and encoder would all-reduce again in every classifier step.
    out = tmp_path / "run"
    arguments = ["--out", str(out), "--cache-dir", str(cache_dir), "--epochs", "1"]
    output = torchrun(*arguments, "--model", "gru", "--pretrain-epochs", "1", *SMALL)
    sums = checksums(output)
    assert set(sums) == {0, 1} and sums[0] == sums[1], output
    assert output.count("pre-train epoch 1: language-model loss") == 1  # rank 0 speaks
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["pretrain_epochs"] == 1


@pytest.mark.slow
def test_two_processes_resume_a_checkpoint_and_end_in_step(tmp_path, cache_dir):
    out = tmp_path / "run"
    config = small_run_config(epochs=2, patience=5)

    def stop_at_epoch_2(line):
        if line.startswith("epoch 2:"):
            raise KeyboardInterrupt  # before epoch 2's checkpoint: epoch 1's is kept

    with pytest.raises(KeyboardInterrupt):
        train(config, out, cache_dir=cache_dir, progress=False, log=stop_at_epoch_2)
    first = json.loads((out / CHECKPOINT_DIR / "state.json").read_text())["history"]
    assert len(first) == 1

    output = torchrun("--out", str(out), "--cache-dir", str(cache_dir), "--resume", *SMALL)
    assert "resume: continuing after epoch 1 of 2" in output
    sums = checksums(output)
    assert set(sums) == {0, 1} and sums[0] == sums[1], output
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[0]["val_loss"] == first[0]["val_loss"]
    assert Predictor.load(out).predict("A fine film.")["label"] in ("positive", "negative")


@pytest.mark.slow
def test_a_one_process_result_is_saved_as_before(tmp_path, cache_dir):
    # Not under torchrun: nothing changes (no process group, the result has its metrics).
    result = train(small_run_config(), tmp_path / "one", cache_dir=cache_dir, progress=False,
                   log=lambda _: None)  # fmt: skip
    assert "processes" in result.metrics and result.metrics["processes"] == 1
    save_training_result(tmp_path / "one", result)
