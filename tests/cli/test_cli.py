"""The ``critic`` command end to end, as a user runs it: real processes, a few hundred reviews."""

import json

import pytest

from support.cli import run_cli, start_cli


def run(*args, cache_dir, stdin=None, check=True, cwd=None, env=None):
    """``critic ARGS`` with its cache in ``cache_dir``, which must succeed unless ``check`` is
    false (see run_cli)."""
    env = {"CRITIC_CACHE": str(cache_dir), **(env or {})}
    return run_cli(*args, env=env, input=stdin, check=check, cwd=cwd)


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
    # Its threads are chosen as train's are, and said where the results are not.
    assert "evaluate: " in completed.stderr and " thread(s)" in completed.stderr
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "confusion_matrix"):
        assert key in metrics
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "confusion_matrix.png",
        "reliability.png",
        "roc_curve.png",
    ]
    saved = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(saved["test_accuracy"])
    assert metrics["ece_before"] == pytest.approx(saved["test_ece_before"])
    assert metrics["ece_after"] == pytest.approx(saved["test_ece_after"])
    assert metrics["kind"] == "neural" and metrics["rating_source"] == "probability"
    assert "rating_mae" not in metrics  # the embedded reviews have no stars


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


def test_evaluate_on_every_review_of_a_source_with_its_own_columns(cli_bundle, cache_dir, tmp_path):
    from critic.inference.predictor import Predictor
    from support.data import csv_text, vader_sdist

    out, _ = cli_bundle
    rows = [["review", "sentiment"]] + [
        [f"{text} ({i})", label]
        for i in range(6)
        for text, label in (
            ("Superb, moving, a classic.", "positive"),
            ("Awful and dull.", "negative"),
        )
    ]
    (tmp_path / "mine.csv").write_text(csv_text(rows))
    completed = run(
        "evaluate", out, "--source", tmp_path / "mine.csv", "--text-column", "review",
        "--label-column", "sentiment", cache_dir=cache_dir,
    )  # fmt: skip
    metrics = json.loads(completed.stdout)
    assert metrics["split"] == "all" and metrics["reviews"] == 12
    probabilities = Predictor.load(out).predict_proba([row[0] for row in rows[1:]])
    labels = [row[1] == "positive" for row in rows[1:]]
    assert metrics["accuracy"] == pytest.approx(((probabilities >= 0.5) == labels).mean())
    rotten = json.loads(
        run(
            "evaluate", out, "--source", "rotten_tomatoes", "--max-reviews", 50, cache_dir=cache_dir
        ).stdout
    )
    assert rotten["split"] == "all" and rotten["reviews"] == 50
    assert "rotten_tomatoes" in rotten["data"]
    # critic train fitted the out-of-domain signal: one-line snippets are mostly unusual, and
    # the accuracy is told apart for the answers it calls typical.
    assert "domain: fitted on" in cli_bundle[1].stdout
    assert rotten["domain"]["typical_share"] < 0.5
    assert set(rotten["domain"]) == {
        "typical_share", "accuracy_typical", "accuracy_unusual", "median_score"
    }  # fmt: skip
    amazon = json.loads(
        run(
            "evaluate", out, "--source", "amazon", "--max-reviews", 50, cache_dir=cache_dir,
            env={"CRITIC_VADER_SDIST": str(vader_sdist())},
        ).stdout
    )  # fmt: skip
    assert amazon["reviews"] == 50 and "amazon" in amazon["data"]
    assert amazon["domain"]["typical_share"] < 0.5


def test_compare_prints_the_markdown_report_and_writes_it(
    cli_bundle, second_bundle, cache_dir, tmp_path
):
    out, _ = cli_bundle
    completed = run(
        "compare", out, second_bundle, "--out", tmp_path / "report", "--resamples", 500,
        cache_dir=cache_dir,
    )  # fmt: skip
    assert "| model | bundle | accuracy | 95% interval |" in completed.stdout
    assert "McNemar p" in completed.stdout
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [model["bundle"] for model in report["models"]] == [str(out), str(second_bundle)]
    assert report["reviews"]["split"] == "test" and len(report["pairs"]) == 1
    saved = json.loads((out / "metrics.json").read_text())
    assert report["models"][0]["accuracy"] == pytest.approx(saved["test_accuracy"])
    assert (tmp_path / "report" / "report.md").read_text().strip() == completed.stdout.strip()
    assert (tmp_path / "report" / "accuracy.png").is_file()


def test_compare_without_out_prints_the_report_and_writes_nothing(
    cli_bundle, second_bundle, cache_dir, tmp_path
):
    out, _ = cli_bundle
    folder = tmp_path / "here"
    folder.mkdir()
    completed = run(
        "compare", out, second_bundle, "--resamples", 200, cache_dir=cache_dir, cwd=folder
    )
    assert "| model | bundle | accuracy | 95% interval |" in completed.stdout
    assert "McNemar p" in completed.stdout and "compare: wrote" not in completed.stderr
    assert list(folder.iterdir()) == []


def test_predict_answers_arguments_and_stdin_one_json_object_per_review(cli_bundle, cache_dir):
    out, _ = cli_bundle
    from_args = run(
        "predict", out, "Loved it!", "Not good at all.", cache_dir=cache_dir
    ).stdout.splitlines()
    from_stdin = run(
        "predict", out, stdin="Loved it!\n\nNot good at all.\n", cache_dir=cache_dir
    ).stdout.splitlines()
    # Every line of stdin gets its answer on its own line: the blank one an error record, so
    # that the answer after it still sits beside its review.
    assert len(from_args) == 2 and from_args == [from_stdin[0], from_stdin[2]]
    assert len(from_stdin) == 3
    assert json.loads(from_stdin[1]) == {"line": 2, "status": 400, "message": "the review is empty"}
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
        (["train", "--model", "ensemble", "--out", "{tmp}/x"], "critic ensemble runs/a"),
        (["train", "--model", "nbsvm", "--out", "{tmp}/x", "--c", "0"], "c must be positive"),
        (["ensemble", "{bundle}", "--out", "{tmp}/e"], "at least two member bundles"),
        (["ensemble", "{bundle}", "no/such/bundle", "--out", "{tmp}/e"], "no model bundle"),
        (
            ["train", "--out", "{tmp}/x", "--embeddings", "{tmp}/none.txt"],
            "no word-vector file at",
        ),
        (["train", "--out", "{tmp}/x", "--model", "attention", "--cell", "rnn"], "cell must be"),
        (["train", "--out", "{tmp}/x", "--model", "bilstm", "--pooling", "sum"], "pooling must"),
        (
            ["train", "--out", "{tmp}/x", "--model", "attention", "--pooling", "max"],
            "attention pools a review's words by attention",
        ),
        (["embeddings", "train", "--out", "{tmp}/v.txt", "--dimension", "0"], "dimension must"),
        (["evaluate", "{bundle}", "--split", "everything"], "--split must be"),
        (
            ["evaluate", "{bundle}", "--source", "rotten_tomatoes", "--data", "embedded"],
            "not both",
        ),
        (["compare", "{bundle}", "--out", "{tmp}/report"], "give at least two bundles"),
        (
            ["compare", "{bundle}", "{bundle}", "--out", "{tmp}/r", "--source", "{tmp}/no.csv"],
            "is neither a file nor a folder",
        ),
        (["compare", "{bundle}", "{tmp}/none", "--out", "{tmp}/report"], "no model bundle"),
        (["predict", "{bundle}", "   "], "the review is empty"),
        (
            ["serve", "--variant", "a={bundle}", "--variant", "a={bundle}:2"],
            "variant names must differ; repeated: a",
        ),
        (["serve", "{bundle}", "--port", "0"], "port must be 1-65535, got 0"),
        (["serve", "{bundle}", "--workers", "-1"], "workers must lie in 0-64 (0: one per core)"),
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
    completed = run_cli("train", "--help")
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
    completed = run_cli("compare", "--help")
    assert completed.returncode == 0
    for words in ("--out", "--source", "--resamples", "McNemar", "bootstrap"):
        assert words in completed.stdout


def test_the_command_list_gives_each_commands_summary_whole():
    # The summaries are wrapped docstrings: the help must join their lines, not keep each break.
    import typer

    from critic.cli import app

    group = typer.main.get_command(app)
    env = {"COLUMNS": "400"}
    completed = run_cli("--help", env=env)
    listed = {
        line.strip("│ ").split(None, 1)[0]: line.strip("│ ").split(None, 1)[1].strip()
        for line in completed.stdout.splitlines()
        if line.startswith("│ ") and not line.startswith("│ --")
    }
    for name, command in group.commands.items():
        summary = " ".join((command.help or "").split("\n\n")[0].split())
        assert listed.get(name) == (None if command.hidden else summary), name
    completed = run_cli("sagemaker", "train", "--help", env=env)
    assert "(default: critic-MODEL-TIME)" in completed.stdout


def test_the_aws_commands_are_a_group_and_the_old_top_level_names_are_gone():
    import typer

    from critic.cli import app

    group = typer.main.get_command(app)
    aws = group.commands["sagemaker"]
    assert set(aws.commands) == {
        "train",
        "deploy",
        "invoke",
        "update-weights",
        "delete-endpoint",
        "transform",
        "autoscale",
        "update",
        "capture",
        "shadow",
        "feedback-table",
        "register",
        "approve",
        "versions",
    }
    # critic deploy, invoke, update-weights and delete-endpoint were hidden for one release;
    # the README says where they went.
    assert not {"deploy", "invoke", "update-weights", "delete-endpoint"} & set(group.commands)
    train_options = {option for p in group.commands["train"].params for option in p.opts}
    assert not {"--sagemaker", "--role", "--bucket", "--job-name"} & train_options
    old = run_cli("deploy", "model.tar.gz")
    assert old.returncode == 2 and "No such command 'deploy'" in old.stderr


@pytest.mark.parametrize("stop", ["SIGINT", "SIGKILL"])
def test_an_interrupted_or_killed_training_resumes_from_its_last_epoch(tmp_path, cache_dir, stop):
    import signal
    import time

    out = tmp_path / "run"
    args = ["train", "--out", out, "--epochs", "12", "--patience", "12", "--max-reviews", "400",
            "--vocab-size", "2000", "--max-length", "200", "--device", "cpu", "--no-progress"]  # fmt: skip
    # start_cli sets SIGINT back to its default in the child: a suite run as a background job
    # of a script (`make test &`) would otherwise start it ignored, and the run would finish.
    training = start_cli(*args, env={"CRITIC_CACHE": str(cache_dir)})
    try:
        state = out / "checkpoint" / "state.json"
        deadline = time.monotonic() + 120
        while (
            not state.exists() and time.monotonic() < deadline and training.process.poll() is None
        ):
            time.sleep(0.02)
        training.process.send_signal(getattr(signal, stop))
        code = training.wait(timeout=60)
    finally:
        training.stop()
    stderr = training.stderr()
    if stop == "SIGINT":
        assert code == 130, stderr
        assert "--resume" in stderr and "Traceback" not in stderr
    else:
        assert code == -signal.SIGKILL
    from critic.training.checkpoints import recover_checkpoint

    done = json.loads((recover_checkpoint(out) / "state.json").read_text())["history"]
    assert 1 <= len(done) < 12
    unfinished = run("predict", out, "hi", cache_dir=cache_dir, check=False)
    assert unfinished.returncode == 1 and "--resume" in unfinished.stderr
    resumed = run(*args, "--resume", cache_dir=cache_dir)
    assert f"continuing after epoch {len(done)}" in resumed.stdout
    assert (out / "bundle.json").is_file()


def test_nbsvm_ensemble_evaluate_and_predict_from_the_command_line(cli_bundle, cache_dir, tmp_path):
    nbsvm = tmp_path / "nbsvm"
    trained = run(
        "train", "--model", "nbsvm", "--out", nbsvm, "--max-reviews", "300", "--min-df", "2",
        cache_dir=cache_dir,
    )  # fmt: skip
    assert (
        "nbsvm: chose 1-3-grams" in trained.stdout and "calibration: temperature" in trained.stdout
    )
    config = json.loads((nbsvm / "config.json").read_text())
    assert config["data"]["max_length"] == 5000  # the n-gram model reads whole reviews
    assert config["model"]["c"] is not None
    ensemble = tmp_path / "ensemble"
    built = run("ensemble", nbsvm, cli_bundle[0], "--out", ensemble, cache_dir=cache_dir)
    assert "0-nbsvm" in built.stdout and "1-lstm" in built.stdout
    evaluated = json.loads(run("evaluate", ensemble, cache_dir=cache_dir).stdout)
    saved = json.loads((ensemble / "metrics.json").read_text())
    assert evaluated["kind"] == "ensemble" and evaluated["reviews"] == 30
    assert evaluated["accuracy"] == pytest.approx(saved["test_accuracy"])
    assert evaluated["ece_after"] == pytest.approx(saved["test_ece_after"])
    answer = json.loads(
        run("predict", ensemble, "Loved it!", "--explain", cache_dir=cache_dir).stdout
    )
    assert {"label", "probability", "score", "rating", "tokens", "words"} <= set(answer)
    assert [w["word"] for w in answer["words"]] == ["loved", "it", "!"]


def test_evaluate_on_star_rated_reviews_reports_the_rating_error(cli_bundle, cache_dir, tmp_path):
    from support.data import write_aclimdb

    folder = write_aclimdb(tmp_path, per_class=10)
    metrics = json.loads(
        run(
            "evaluate", cli_bundle[0], "--data", folder, "--split", "test", cache_dir=cache_dir
        ).stdout
    )
    assert metrics["reviews"] == 20
    assert 0 <= metrics["rating_mae"] <= 9
    # None when the small model gives every review the same rating (no ranking to correlate).
    assert metrics["rating_spearman"] is None or -1 <= metrics["rating_spearman"] <= 1


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


def test_embeddings_none_trains_the_attention_model_from_random_vectors(tmp_path, cache_dir):
    from critic.models import recipe

    assert recipe("attention")["train"]["embeddings"] == "word2vec"  # what "none" overrides
    out = tmp_path / "attention"
    completed = run(
        "train", "--model", "attention", "--out", out, "--embeddings", "none",
        "--max-reviews", "300", "--vocab-size", "2000", "--max-length", "100", "--epochs", "1",
        "--embedding-dim", "8", "--hidden-dim", "8", "--device", "cpu", "--no-progress",
        cache_dir=cache_dir,
    )  # fmt: skip
    assert "word2vec" not in completed.stdout and "embeddings:" not in completed.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["embeddings"] is None
    assert json.loads((out / "metrics.json").read_text())["embeddings_coverage"] is None


def test_a_pooling_given_beats_the_bilstm_recipes_and_its_bundle_answers(tmp_path, cache_dir):
    from critic.models import recipe

    assert recipe("bilstm")["model"]["pooling"] == "max"
    out = tmp_path / "bilstm"
    run(
        "train", "--model", "bilstm", "--pooling", "mean", "--embeddings", "none", "--out", out,
        "--max-reviews", "300", "--vocab-size", "2000", "--max-length", "100", "--epochs", "1",
        "--embedding-dim", "8", "--hidden-dim", "8", "--device", "cpu", "--no-progress",
        cache_dir=cache_dir,
    )  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["pooling"] == "mean" and config["model"]["dropout"] == 0.3
    answer = json.loads(run("predict", out, "A fine film.", cache_dir=cache_dir).stdout)
    assert answer["label"] in ("positive", "negative") and 0 <= answer["probability"] <= 1
