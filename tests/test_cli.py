"""The ``critic`` command end to end, as a user runs it: real processes, a few hundred reviews."""

import json
import os
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "critic.cli"]


def run(*args, cache_dir, stdin=None, check=True):
    env = {**os.environ, "CRITIC_CACHE": str(cache_dir)}
    completed = subprocess.run(
        [*CLI, *map(str, args)], input=stdin, capture_output=True, text=True, env=env, timeout=300
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"exit {completed.returncode}\n{completed.stdout}\n{completed.stderr}")
    return completed


@pytest.fixture(scope="module")
def cli_bundle(tmp_path_factory, cache_dir):
    out = tmp_path_factory.mktemp("cli") / "lstm"
    completed = run(
        "train", "--model", "lstm", "--out", out, "--epochs", "1", "--max-reviews", "300",
        "--vocab-size", "2000", "--max-length", "200", "--device", "cpu",
        cache_dir=cache_dir,
    )  # fmt: skip
    assert "bundle:" in completed.stdout
    return out, completed


def test_train_shows_progress_and_writes_a_bundle(cli_bundle):
    out, completed = cli_bundle
    assert "epoch 1/1" in completed.stderr  # the progress bar
    assert "reviews_s" in completed.stderr
    assert "data: train" in completed.stdout and "test accuracy" in completed.stdout
    assert (out / "bundle.json").is_file() and (out / "curves.png").is_file()
    assert not (out / "checkpoint").exists()


def test_evaluate_prints_the_metrics_as_json(cli_bundle, cache_dir, tmp_path):
    out, _ = cli_bundle
    completed = run(
        "evaluate", out, "--split", "test", "--plots", tmp_path / "plots", cache_dir=cache_dir
    )
    metrics = json.loads(completed.stdout)
    assert metrics["reviews"] == 30
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "confusion_matrix"):
        assert key in metrics
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "confusion_matrix.png",
        "roc_curve.png",
    ]
    saved = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(saved["test_accuracy"])


def test_evaluate_on_another_source(cli_bundle, cache_dir):
    out, _ = cli_bundle
    completed = run(
        "evaluate",
        out,
        "--data",
        "rotten_tomatoes",
        "--split",
        "all",
        "--max-reviews",
        "100",
        cache_dir=cache_dir,
    )
    metrics = json.loads(completed.stdout)
    assert metrics["reviews"] == 100 and "rotten_tomatoes" in metrics["data"]


def test_predict_answers_arguments_and_stdin_one_json_object_per_review(cli_bundle, cache_dir):
    out, _ = cli_bundle
    from_args = run(
        "predict", out, "Loved it!", "Not good at all.", cache_dir=cache_dir
    ).stdout.splitlines()
    from_stdin = run(
        "predict", out, stdin="Loved it!\n\nNot good at all.\n", cache_dir=cache_dir
    ).stdout.splitlines()
    assert len(from_args) == 2 and from_args == from_stdin
    for line in from_args:
        result = json.loads(line)
        assert result["label"] in ("positive", "negative")
        assert 0 <= result["probability"] <= 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "no/such/bundle", "hi"], "no model bundle at no/such/bundle"),
        (["evaluate", "no/such/bundle"], "no model bundle"),
        (
            ["train", "--model", "transformer", "--out", "{tmp}/x"],
            "unknown model 'transformer'; valid models:",
        ),
        (["train", "--out", "{tmp}/x", "--data", "{tmp}/empty.csv"], "holds no reviews"),
        (["train", "--out", "{tmp}/x", "--data", "{tmp}/columns.csv"], "no column 'text'"),
        (
            ["train", "--out", "{tmp}/x", "--data", "{tmp}/missing.csv"],
            "is neither a file nor a folder",
        ),
        (["train", "--out", "{tmp}/x", "--vocab-size", "1"], "vocab_size must be at least 3"),
        (["train", "--out", "{tmp}/x", "--resume"], "nothing to resume"),
        (
            ["train", "--out", "{tmp}/x", "--embeddings", "{tmp}/none.txt"],
            "no word-vector file at",
        ),
        (["train", "--out", "{tmp}/x", "--model", "attention", "--cell", "rnn"], "cell must be"),
        (["embeddings", "train", "--out", "{tmp}/v.txt", "--dimension", "0"], "dimension must"),
        (["evaluate", "{bundle}", "--split", "everything"], "--split must be"),
        (["predict", "{bundle}", "   "], "the review is empty"),
        (["predict", "{bundle}/model.safetensors", "hi"], "is not a model bundle folder"),
    ],
)
def test_a_mistake_is_one_line_on_stderr_and_a_nonzero_exit(
    tmp_path, cache_dir, cli_bundle, args, message
):
    (tmp_path / "empty.csv").write_text("text,label\n")
    (tmp_path / "columns.csv").write_text("review,label\ngood,1\n")
    args = [a.format(tmp=tmp_path, bundle=cli_bundle[0]) for a in args]
    completed = run(*args, cache_dir=cache_dir, check=False)
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("critic: error:") and message in lines[0]
    assert "Traceback" not in completed.stderr


def test_a_corrupt_bundle_is_one_line_too(cli_bundle, cache_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(cli_bundle[0], broken)
    (broken / "model.safetensors").write_bytes(b"junk")
    completed = run("predict", broken, "hi", cache_dir=cache_dir, check=False)
    assert completed.returncode == 1
    assert (
        completed.stderr.strip()
        == f"critic: error: {broken} is corrupt: model.safetensors does not match its checksum"
    )


def test_help_is_worth_reading():
    completed = subprocess.run([*CLI, "train", "--help"], capture_output=True, text=True)
    assert completed.returncode == 0
    for option in (
        "--model",
        "--out",
        "--epochs",
        "--max-reviews",
        "--vocab-size",
        "--max-length",
        "--data",
        "--resume",
    ):
        assert option in completed.stdout


@pytest.mark.parametrize("stop", ["SIGINT", "SIGKILL"])
def test_an_interrupted_or_killed_training_resumes_from_its_last_epoch(tmp_path, cache_dir, stop):
    import signal
    import time

    out = tmp_path / "run"
    args = ["train", "--out", out, "--epochs", "12", "--patience", "12", "--max-reviews", "400",
            "--vocab-size", "2000", "--max-length", "200", "--device", "cpu", "--no-progress"]  # fmt: skip
    env = {**os.environ, "CRITIC_CACHE": str(cache_dir)}
    process = subprocess.Popen(
        [*CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    state = out / "checkpoint" / "state.json"
    deadline = time.monotonic() + 120
    while not state.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    process.send_signal(getattr(signal, stop))
    _, stderr = process.communicate(timeout=60)
    if stop == "SIGINT":
        assert process.returncode == 130, stderr
        assert "--resume" in stderr and "Traceback" not in stderr
    else:
        assert process.returncode == -signal.SIGKILL
    from critic.train import recover_checkpoint

    done = json.loads((recover_checkpoint(out) / "state.json").read_text())["history"]
    assert 1 <= len(done) < 12
    unfinished = run("predict", out, "hi", cache_dir=cache_dir, check=False)
    assert unfinished.returncode == 1 and "--resume" in unfinished.stderr
    resumed = run(*args, "--resume", cache_dir=cache_dir)
    assert f"continuing after epoch {len(done)}" in resumed.stdout
    assert (out / "bundle.json").is_file()


def test_word2vec_trained_by_one_command_starts_the_model_of_the_next(tmp_path, cache_dir):
    vectors = tmp_path / "w2v.txt"
    small = ["--max-reviews", "300"]
    trained = run(
        "embeddings", "train", "--out", vectors, *small, "--dimension", "12", "--epochs", "1",
        "--cbow", cache_dir=cache_dir,
    )  # fmt: skip
    assert "word2vec: CBOW" in trained.stdout
    assert vectors.read_text().splitlines()[0].endswith(" 12")
    out = tmp_path / "attention"
    completed = run(
        "train", "--model", "attention", "--out", out, "--embeddings", vectors, *small,
        "--vocab-size", "2000", "--max-length", "200", "--epochs", "1", "--hidden-dim", "8",
        "--device", "cpu", "--no-progress", cache_dir=cache_dir,
    )  # fmt: skip
    assert "embeddings: embedding size 12" in completed.stdout
    assert "coverage" in completed.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["embedding_dim"] == 12 and config["model"]["name"] == "attention"
    assert config["train"]["embeddings"] == str(vectors)


def test_models_lists_every_architecture_with_its_recipe(cache_dir):
    from critic.models import model_names, recipe

    listed = [json.loads(line) for line in run("models", cache_dir=cache_dir).stdout.splitlines()]
    assert [row["model"] for row in listed] == model_names()
    assert all(row["recipe"] == recipe(row["model"]) for row in listed)
