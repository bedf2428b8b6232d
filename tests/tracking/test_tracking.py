"""Experiment tracking and the model registry against a real MLflow tracking server on a
loopback port: what a tracked training logs, evaluate, compare and ensemble logging to the
bundles' runs, --track without MLflow, a registered version answering as the Predictor does,
aliases, and a registry version served by a real critic serve."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from critic.cli.train import RUN_OPTIONS
from critic.inference.bundle import MANIFEST, read_manifest, verify_bundle
from critic.inference.predictor import Predictor
from critic.tracking.registry import MANIFEST_TAG, fetch_bundle, register_bundle
from critic.tracking.settings import TrackingSettings
from support.cli import environment, run_cli
from support.servers import running_mlflow_server, running_server, wait_for

mlflow = pytest.importorskip("mlflow")

pytestmark = pytest.mark.slow  # each module fixture trains a model

# A few hundred embedded reviews: quick, and enough for every figure to be a real one.
SMALL = ["--max-reviews", 300, "--vocab-size", 2000, "--batch-size", 32, "--device", "cpu"]
REVIEWS = ["A wonderful film, moving and funny.", "Dull, stupid and far too long.", "Not good."]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
        yield server.url


@pytest.fixture(scope="module")
def tracked(server_url):
    """The environment of a command that tracks to the test's server (and nowhere else)."""
    return {"MLFLOW_TRACKING_URI": server_url, "CRITIC_TRACKING_URI": None, "CRITIC_TRACK": None}


@pytest.fixture(scope="module")
def client(server_url):
    return mlflow.MlflowClient(tracking_uri=server_url, registry_uri=server_url)


def train_tracked(folder: Path, env: dict, cache_dir: Path, *options) -> tuple[Path, str]:
    out = folder / "bundle"
    completed = run_cli(
        "train", "--out", out, "--no-progress", "--cache-dir", cache_dir, "--track",
        *SMALL, *options, env=env, check=True,
    )  # fmt: skip
    return out, completed.stdout


@pytest.fixture(scope="module")
def lstm(tmp_path_factory, tracked, cache_dir):
    """The reference LSTM, two epochs on 300 reviews, tracked: (bundle, what it printed)."""
    return train_tracked(
        tmp_path_factory.mktemp("lstm"), tracked, cache_dir, "--epochs", 2, "--max-length", 200
    )


@pytest.fixture(scope="module")
def nbsvm(tmp_path_factory, tracked, cache_dir):
    """The n-gram model on the same reviews and split, tracked."""
    return train_tracked(
        tmp_path_factory.mktemp("nbsvm"), tracked, cache_dir, "--model", "nbsvm", "--min-df", 2
    )


def run_of(bundle: Path) -> str:
    return read_manifest(bundle)["tracking"]["run_id"]


def git_head() -> str | None:
    completed = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    return completed.stdout.strip() if completed.returncode == 0 else None


def test_a_tracked_training_logs_every_setting_each_epoch_the_metrics_tags_and_the_bundle(
    lstm, client, server_url, tmp_path
):
    bundle, printed = lstm
    run = client.get_run(run_of(bundle))
    assert run.info.status == "FINISHED"
    assert f"see it with: {server_url}/#/experiments/{run.info.experiment_id}/runs/" in printed
    config = json.loads((bundle / "config.json").read_text())

    # Every option of critic train is a parameter, with the value the run trained with.
    assert set(run.data.params) == {option.name for option in RUN_OPTIONS}
    for option in RUN_OPTIONS:
        assert run.data.params[option.name] == str(config[option.section][option.field])
    assert run.data.params["max_reviews"] == "300" and run.data.params["epochs"] == "2"

    # Each epoch's figures, step = the epoch, the same as the bundle's history.
    history = json.loads((bundle / "metrics.json").read_text())["history"]
    assert len(history) == 2
    for name in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        logged = client.get_metric_history(run.info.run_id, name)
        assert [(m.step, m.value) for m in logged] == [(r["epoch"], r[name]) for r in history]
    paces = client.get_metric_history(run.info.run_id, "reviews_per_second")
    assert [m.step for m in paces] == [1, 2] and all(m.value > 0 for m in paces)

    metrics = json.loads((bundle / "metrics.json").read_text())
    for name in ("test_accuracy", "test_ece_before", "test_ece_after", "train_reviews_per_second"):
        assert run.data.metrics[name] == pytest.approx(metrics[name])
    assert run.data.metrics["best_val_loss"] == pytest.approx(metrics["val_loss"])

    tags = run.data.tags
    assert tags["critic.recipe"] == "lstm"
    assert tags["critic.seed"] == "0"
    assert tags["critic.device"] == "cpu"
    if git_head():
        assert tags["critic.git_commit"] == git_head()

    # The plots, and the bundle itself: downloaded, it is the bundle, run id and all.
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/curves.png", "plots/reliability.png"}
    copy = Path(client.download_artifacts(run.info.run_id, "bundle", str(tmp_path)))
    assert verify_bundle(copy)["files"] == read_manifest(bundle)["files"]
    assert run_of(copy) == run.info.run_id


def test_a_run_on_the_default_store_needs_no_server_and_says_how_to_open_it(tmp_path, cache_dir):
    completed = run_cli(
        "train", "--out", "runs/nbsvm", "--model", "nbsvm", "--min-df", 2, "--track",
        "--cache-dir", cache_dir, *SMALL,
        env={"MLFLOW_TRACKING_URI": None, "CRITIC_TRACKING_URI": None}, cwd=tmp_path, check=True,
    )  # fmt: skip
    assert "mlflow ui --backend-store-uri sqlite:///runs/mlflow.db" in completed.stdout
    local = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/runs/mlflow.db")
    run = local.get_run(run_of(tmp_path / "runs/nbsvm"))
    assert run.data.tags["critic.recipe"] == "nbsvm"
    assert run.info.artifact_uri.startswith((tmp_path / "runs/mlartifacts").as_uri())
    stored = tmp_path / "runs/mlartifacts" / run.info.run_id / "artifacts/bundle" / MANIFEST
    assert stored.is_file()


# MLflow made unimportable, as if critic[tracking] were not installed.
WITHOUT_MLFLOW = "import sys; sys.modules['mlflow'] = None; from critic.cli import main; main()"


def without_mlflow(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_MLFLOW, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment({"CRITIC_TRACKING_URI": None}),
        timeout=120,
    )


def test_track_without_mlflow_is_one_line_and_a_failing_exit(tmp_path):
    completed = without_mlflow("train", "--out", tmp_path / "out", "--track", cwd=tmp_path)
    assert completed.returncode != 0
    lines = completed.stderr.strip().splitlines()
    assert lines == ["critic: error: --track needs MLflow, which is not installed: "
                     "pip install 'critic[tracking]'"]  # fmt: skip
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()

    served = without_mlflow("serve", "--variant", "a=models:/critic@champion", cwd=tmp_path)
    assert served.returncode != 0
    assert len(served.stderr.strip().splitlines()) == 1
    assert "critic[tracking]" in served.stderr

    # Without --track, critic does not need MLflow at all.
    assert without_mlflow("train", "--help", cwd=tmp_path).returncode == 0


def test_evaluate_and_compare_log_to_the_runs_of_the_bundles_they_judge(
    lstm, nbsvm, client, tracked
):
    lstm_bundle, nbsvm_bundle = lstm[0], nbsvm[0]
    evaluated = run_cli("evaluate", lstm_bundle, "--track", env=tracked, check=True)
    result = json.loads(evaluated.stdout)
    assert f"logged to run {run_of(lstm_bundle)}" in evaluated.stderr
    metrics = client.get_run(run_of(lstm_bundle)).data.metrics
    prefix = "evaluate/test/"  # the bundle's own test split
    assert metrics[f"{prefix}accuracy"] == pytest.approx(result["accuracy"])
    assert metrics[f"{prefix}ece_after"] == pytest.approx(result["ece_after"])

    compared = run_cli(
        "compare", lstm_bundle, nbsvm_bundle, "--resamples", 200, "--track", "--out", "report",
        env=tracked, check=True, cwd=lstm_bundle.parent,
    )  # fmt: skip
    report = json.loads((lstm_bundle.parent / "report/report.json").read_text())
    by_bundle = {model["bundle"]: model for model in report["models"]}
    pair = report["pairs"][0]
    for bundle in (lstm_bundle, nbsvm_bundle):
        model = by_bundle[str(bundle)]
        logged = client.get_run(run_of(bundle)).data.metrics
        assert logged["compare/accuracy"] == pytest.approx(model["accuracy"])
        sign = 1 if model["name"] == pair["a"] else -1
        # against the other model: one of them, named by its folder (both are "bundle" here)
        (difference,) = [
            value
            for name, value in logged.items()
            if name.startswith("compare/vs/") and name.endswith("/accuracy_difference")
        ]
        assert difference == pytest.approx(sign * pair["accuracy_difference"])
        assert f"logged to run {run_of(bundle)}" in compared.stderr


def test_an_ensemble_run_names_its_members_runs_as_its_parents(
    lstm, nbsvm, client, tracked, tmp_path
):
    out = tmp_path / "ensemble"
    run_cli("ensemble", nbsvm[0], lstm[0], "--out", out, "--track", env=tracked, check=True)
    run = client.get_run(run_of(out))
    tags = run.data.tags
    members = json.loads((out / "ensemble.json").read_text())["members"]
    expected = {
        member["name"]: run_of(bundle)
        for member, bundle in zip(members, (nbsvm[0], lstm[0]), strict=True)
    }
    assert {name: tags[f"critic.member.{name}.run_id"] for name in expected} == expected
    assert set(tags["critic.parent_runs"].split(",")) == set(expected.values())
    metrics = json.loads((out / "metrics.json").read_text())
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])


@pytest.fixture(scope="module")
def registered(lstm, nbsvm, tracked):
    """The LSTM registered as critic's champion, the n-gram model as its challenger."""
    versions = {}
    for bundle, alias in ((lstm[0], "champion"), (nbsvm[0], "challenger")):
        completed = run_cli(
            "register", bundle, "--name", "critic", "--alias", alias, env=tracked, check=True
        )
        versions[alias] = json.loads(completed.stdout)["version"]
    return versions


def test_a_registered_version_answers_as_the_predictor_does(
    registered, lstm, client, server_url, monkeypatch
):
    version = client.get_model_version("critic", registered["champion"])
    assert version.run_id == run_of(lstm[0])  # logged to the run that trained it
    assert client.get_model_version_by_alias("critic", "champion").version == version.version

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server_url)
    model = mlflow.pyfunc.load_model(f"models:/critic/{version.version}")
    expected = Predictor.load(lstm[0]).predict(REVIEWS)
    assert model.predict(REVIEWS) == expected
    import pandas as pd

    assert model.predict(pd.DataFrame({"text": REVIEWS})) == expected


def test_an_alias_moves_to_another_version(registered, client, tracked):
    run_cli("alias", "critic", "previous", "@champion", env=tracked, check=True)
    moved = run_cli("alias", "critic", "previous", "@challenger", env=tracked, check=True)
    assert json.loads(moved.stdout)["version"] == registered["challenger"]
    assert (
        client.get_model_version_by_alias("critic", "previous").version == registered["challenger"]
    )
    missing = run_cli("alias", "critic", "previous", "99", env=tracked)
    assert missing.returncode == 1
    assert missing.stderr.startswith("critic: error: models:/critic:")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_registry_versions_are_served_by_a_real_critic_serve(registered, lstm, nbsvm, tracked,
                                                             tmp_path):  # fmt: skip
    command = [
        "serve", "--variant", "champion=models:/critic@champion:0.5",
        "--variant", f"challenger=models:/critic/{registered['challenger']}:0.5",
        "--feedback-db", "off",
    ]  # fmt: skip
    env = {**tracked, "CRITIC_CACHE": str(tmp_path / "cache")}
    with running_server(command, env=env) as server:
        for variant, bundle in (("champion", lstm[0]), ("challenger", nbsvm[0])):
            request = urllib.request.Request(
                f"{server.url}/invocations",
                data=json.dumps({"instances": REVIEWS}).encode(),
                headers={
                    "Content-Type": "application/json",
                    "X-Amzn-SageMaker-Target-Variant": variant,
                },
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                answer = json.loads(response.read())
            assert answer["variant"] == variant
            expected = Predictor.load(bundle).predict(REVIEWS)
            for got, want in zip(answer["predictions"], expected, strict=True):
                assert (got["label"], got["rating"]) == (want["label"], want["rating"])
                assert got["score"] == pytest.approx(want["score"], abs=1e-5)
        printed = server.stdout()
    assert f"models:/critic@champion is version {registered['champion']} of critic" in printed
    assert str(tmp_path / "cache" / "registry") in printed


def test_a_damaged_cached_copy_is_fetched_again_and_a_changed_manifest_refused(
    lstm, client, server_url, tmp_path
):
    settings = TrackingSettings(tracking_uri=server_url)
    registered = register_bundle(settings, lstm[0], "fetched")
    first = fetch_bundle(settings, "models:/fetched/1", tmp_path)
    assert read_manifest(first.path)["files"] == read_manifest(lstm[0])["files"]

    (first.path / "vocab.json").write_text("[]")  # damaged in the cache
    again = fetch_bundle(settings, f"models:/fetched/{registered.version}", tmp_path)
    assert again.path == first.path
    verify_bundle(again.path)

    client.set_model_version_tag("fetched", registered.version, MANIFEST_TAG, "0" * 64)
    from critic.errors import BundleError

    with pytest.raises(BundleError, match="does not match the one registered"):
        fetch_bundle(settings, "models:/fetched/1", tmp_path)


def test_promoting_a_registry_shadow_moves_the_champion_alias_to_its_version(
    registered, client, tracked, tmp_path
):
    """A release (here a shadow promoted to live) leaves the registry saying what serves."""
    token = "release-test-token"
    command = [
        "serve", "--variant", "live=models:/critic@champion",
        "--shadow", "candidate=models:/critic@challenger", "--feedback-db", "off",
    ]  # fmt: skip
    env = {**tracked, "CRITIC_CACHE": str(tmp_path / "cache"), "CRITIC_ADMIN_TOKEN": token}
    try:
        with running_server(command, env=env) as server:
            request = urllib.request.Request(
                f"{server.url}/admin/shadows/candidate/promote",
                data=b"{}",
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                assert json.loads(response.read())["promoted"] == "candidate"
            deadline = time.monotonic() + 30
            moved = None
            while time.monotonic() < deadline:
                moved = client.get_model_version_by_alias("critic", "champion").version
                if moved == registered["challenger"]:
                    break
                time.sleep(0.2)
            assert moved == registered["challenger"]
            wait_for(lambda: "is now version" in server.stderr(), seconds=10)
        assert (
            f"registry: models:/critic@champion is now version {registered['challenger']} "
            "(candidate released)"
        ) in server.stderr()
    finally:  # the other tests' champion
        client.set_registered_model_alias("critic", "champion", registered["champion"])
