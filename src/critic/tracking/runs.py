"""Runs logged to MLflow: a training, an ensemble, and what evaluate and compare found.

A training run holds every setting of the run's config as a parameter (named as the
``critic train`` option that sets it), each epoch's training and validation loss and
accuracy and reviews/s (step = epoch), the bundle's final metrics (test accuracy, ECE before
and after calibration, ...), its plots, and the bundle itself as an artifact; tags name the
recipe, the seed, the git commit and the device. The bundle records the run in its manifest
(:func:`critic.inference.bundle.record_run`), so that ``critic evaluate`` and
``critic compare`` log to the run of the bundle they judge, and an ensemble's run names its
members' runs.

The client is MLflow's ``MlflowClient``, never the fluent API's global "active run": several
runs (compare's) can be written to at once, and nothing leaks between commands.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from critic.errors import CriticError
from critic.fileio import write_text_atomic
from critic.inference.bundle import MANIFEST, read_manifest, record_run, recorded_run
from critic.tracking.settings import (
    TrackingSettings,
    client,
    experiment_id,
    local_database,
    where_to_look,
)

PLOTS = ("curves.png", "reliability.png")
# MLflow's limit on a parameter's value; a longer one (an embeddings path) is cut, and said so.
MAX_PARAM_LENGTH = 6000
METRIC_NAME = re.compile(r"[^\w\-. /]")
EPOCH_FIGURES = (
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
    "reviews_per_second",
)
"""What each epoch logs (critic.training.run.EpochHook's row)."""


def git_commit(folder: Path | None = None) -> str | None:
    """The commit checked out where critic runs (None outside a git repository)."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = completed.stdout.strip()
    return commit if completed.returncode == 0 and commit else None


def numbers(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers among ``values`` (booleans, text, lists and None left out), by a
    name MLflow takes as a metric's."""
    return {
        METRIC_NAME.sub("_", f"{prefix}{key}"): float(value)
        for key, value in values.items()
        if isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    }


def stored_uri(uri: str) -> str:
    """``uri`` as a bundle records it: a local store's path made absolute, so that the run is
    found from any folder."""
    database = local_database(uri)
    return f"sqlite:///{database.resolve()}" if database is not None else uri


class TrackedRun:
    """One MLflow run as critic writes to it."""

    def __init__(self, tracker, uri: str, experiment: str, run_id: str):
        self.tracker = tracker
        self.uri = uri
        self.experiment = experiment
        self.run_id = run_id
        self.epochs_seen: set[int] = set()

    @classmethod
    def start(
        cls,
        settings: TrackingSettings,
        name: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> TrackedRun:
        """A new run in the settings' experiment, with these parameters and tags."""
        uri = settings.uri()
        tracker = client(uri)
        experiment = experiment_id(tracker, uri, settings.experiment)
        commit = git_commit()
        all_tags = {
            **({"critic.git_commit": commit, "mlflow.source.git.commit": commit} if commit else {}),
            **(tags or {}),
        }
        created = tracker.create_run(
            experiment,
            run_name=settings.run_name or name,
            tags={key: str(value) for key, value in all_tags.items() if value is not None},
        )
        run = cls(tracker, uri, experiment, created.info.run_id)
        if params:
            run.log_params(params)
        return run

    @classmethod
    def of_bundle(cls, settings: TrackingSettings, bundle: Path) -> TrackedRun | None:
        """The run that made ``bundle`` (critic train --track), else None."""
        recorded = recorded_run(bundle)
        if recorded is None:
            return None
        uri = settings.uri(recorded.get("tracking_uri"))
        tracker = client(uri)
        try:
            found = tracker.get_run(recorded["run_id"])
        except Exception as error:  # MlflowException: no such run in this store
            raise CriticError(
                f"{bundle} was logged as run {recorded['run_id']}, which {uri} does not have "
                f"({str(error).splitlines()[0]})"
            ) from None
        return cls(tracker, uri, found.info.experiment_id, found.info.run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(str(key), str(value)[:MAX_PARAM_LENGTH]) for key, value in params.items()]
        for start in range(0, len(entries), 100):  # MLflow's most parameters in one batch
            self.tracker.log_batch(self.run_id, params=entries[start : start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        for start in range(0, len(entries), 1000):
            self.tracker.log_batch(self.run_id, metrics=entries[start : start + 1000])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        entries = [RunTag(str(k), str(v)) for k, v in tags.items() if v is not None]
        if entries:
            self.tracker.log_batch(self.run_id, tags=entries)

    def epoch(self, row: dict) -> None:
        """An :data:`~critic.training.run.EpochHook`: one epoch's figures, step = the epoch."""
        figures = numbers({k: v for k, v in row.items() if k != "epoch"})
        self.log_metrics(figures, step=int(row["epoch"]))
        self.epochs_seen.add(int(row["epoch"]))

    def log_files(self, folder: Path, names: Iterable[str], artifact_path: str) -> None:
        """Files of ``folder`` (relative names, sub-folders kept) under ``artifact_path``."""
        for name in names:
            parent = Path(name).parent.as_posix()
            target = artifact_path if parent == "." else f"{artifact_path}/{parent}"
            self.tracker.log_artifact(self.run_id, str(Path(folder) / name), target)

    def log_bundle(self, bundle: Path, metrics: Mapping[str, Any]) -> None:
        """A finished bundle: its final metrics, its plots, and (once its manifest names this
        run) the bundle itself."""
        bundle = Path(bundle)
        record_run(bundle, {"run_id": self.run_id, "tracking_uri": stored_uri(self.uri)})
        # metrics.json's val_loss and val_accuracy are the best epoch's: named so, they do not
        # land as one more point on the per-epoch curves of the same name.
        self.log_metrics(
            {
                (f"best_{key}" if key in EPOCH_FIGURES else key): value
                for key, value in numbers(metrics).items()
            }
        )
        manifest = read_manifest(bundle)
        plots = [name for name in PLOTS if name in manifest["files"]]
        self.log_files(bundle, plots, "plots")
        self.log_files(bundle, [*manifest["files"], MANIFEST], "bundle")

    def log_json(self, payload: Any, artifact_file: str) -> None:
        with tempfile.TemporaryDirectory(prefix="critic-track-") as folder:
            path = Path(folder) / Path(artifact_file).name
            write_text_atomic(path, json.dumps(payload, indent=2, ensure_ascii=False))
            parent = Path(artifact_file).parent.as_posix()
            self.tracker.log_artifact(self.run_id, str(path), None if parent == "." else parent)

    def end(self, status: str = "FINISHED") -> None:
        """FINISHED, FAILED or KILLED (interrupted)."""
        self.tracker.set_terminated(self.run_id, status)

    def where(self) -> str:
        return where_to_look(self.uri, self.experiment, self.run_id)


def training_tags(config, recipe: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A training run's tags: its recipe (the model's), its seed."""
    return {
        "critic.command": "train",
        "critic.recipe": config.model.name,
        "critic.recipe_settings": json.dumps(dict(recipe or {}), sort_keys=True),
        "critic.seed": config.train.seed,
    }


def finish_training(
    run: TrackedRun, bundle: Path, metrics: Mapping[str, Any], history: Iterable[dict] = ()
) -> None:
    """A training run's end: the epochs it was not told of as they ended (those a resumed run
    had done before), the device it trained on, the bundle and its metrics."""
    for row in history:
        if int(row["epoch"]) not in run.epochs_seen:
            run.epoch(row)
    run.set_tags({"critic.device": metrics.get("device", "cpu"), "critic.bundle": str(bundle)})
    run.log_bundle(bundle, metrics)
    run.end()


def member_runs(bundle: Path) -> dict[str, str]:
    """An ensemble bundle's members (by name) and the run each was trained in, where tracked."""
    ensemble = json.loads((Path(bundle) / "ensemble.json").read_text(encoding="utf-8"))
    runs = {}
    for member in ensemble["members"]:
        recorded = recorded_run(Path(bundle) / member["path"])
        if recorded is not None:
            runs[member["name"]] = recorded["run_id"]
    return runs


def track_ensemble(
    settings: TrackingSettings, bundle: Path, members: list[Path], metrics: Mapping[str, Any]
) -> TrackedRun:
    """An ensemble's run: its members' runs named as its parents (``critic.parent_runs``, and
    one ``critic.member.NAME.run_id`` tag each), its weights, metrics and bundle."""
    parents = member_runs(bundle)
    ensemble = json.loads((Path(bundle) / "ensemble.json").read_text(encoding="utf-8"))
    params: dict[str, Any] = {"members": ",".join(str(member) for member in members)}
    for member in ensemble["members"]:
        params[f"weight.{member['name']}"] = member["weight"]
    params["bias"] = ensemble["bias"]
    tags: dict[str, Any] = {
        "critic.command": "ensemble",
        "critic.recipe": "ensemble",
        "critic.parent_runs": ",".join(parents.values()),
        **{f"critic.member.{name}.run_id": run_id for name, run_id in parents.items()},
    }
    run = TrackedRun.start(settings, Path(bundle).name, params, tags)
    try:
        finish_training(run, bundle, metrics)
    except BaseException:
        run.end("FAILED")
        raise
    return run


def track_evaluation(
    settings: TrackingSettings, bundle: Path, result: Mapping[str, Any], data: str | None = None
) -> TrackedRun | None:
    """``critic evaluate``'s figures into the bundle's run, as ``evaluate/SPLIT/NAME`` on the
    bundle's own data, ``evaluate/DATA/SPLIT/NAME`` on other ``data`` (a source's name, or a
    file's stem), and its plots; None when the bundle records no run."""
    run = TrackedRun.of_bundle(settings, bundle)
    if run is None:
        return None
    where = f"{METRIC_NAME.sub('_', Path(data).stem)}/" if data else ""
    prefix = f"evaluate/{where}{result.get('split', 'split')}/"
    run.log_metrics(numbers(result, prefix))
    for plot in result.get("plots", []):
        run.tracker.log_artifact(run.run_id, plot, prefix.rstrip("/"))
    return run


def track_comparison(settings: TrackingSettings, comparison) -> dict[str, TrackedRun | None]:
    """``critic compare``'s figures into the run of each bundle compared that has one: its
    accuracy and speed on the shared reviews (``compare/NAME``), and against each other model
    (``compare/vs/OTHER/NAME``, OTHER the other bundle's folder name; the difference taken as this model's minus the other's);
    the whole report as ``compare/report.json``. By bundle: its run, None where it has none."""
    runs: dict[str, TrackedRun | None] = {}
    labels = _labels([model.bundle for model in comparison.models])
    label = {model.name: labels[model.bundle] for model in comparison.models}
    for model in comparison.models:
        run = runs[model.bundle] = TrackedRun.of_bundle(settings, Path(model.bundle))
        if run is None:
            continue
        figures = numbers(
            {
                "accuracy": model.accuracy,
                "accuracy_low": model.accuracy_low,
                "accuracy_high": model.accuracy_high,
                "reviews_per_second": model.reviews_per_second,
                "ms_per_review": model.ms_per_review,
            },
            "compare/",
        )
        for pair in comparison.pairs:
            if model.name not in (pair.a, pair.b):
                continue
            mine = pair.a == model.name
            other = pair.b if mine else pair.a
            sign = 1.0 if mine else -1.0
            figures |= numbers(
                {
                    "accuracy_difference": sign * pair.accuracy_difference,
                    "agreement": pair.agreement,
                    "mcnemar_p": pair.mcnemar_p,
                },
                f"compare/vs/{label[other]}/",
            )
        run.log_metrics(figures)
        run.log_json(comparison.to_dict(), "compare/report.json")
    return runs


def _labels(bundles: list[str]) -> dict[str, str]:
    """A short name for each bundle in a metric's name: its folder's name, with its parent's
    where two folders share a name (runs/a/lstm and runs/b/lstm)."""
    names = [Path(bundle).name for bundle in bundles]
    return {
        bundle: METRIC_NAME.sub(
            "_", name if names.count(name) == 1 else f"{Path(bundle).parent.name}-{name}"
        )
        for bundle, name in zip(bundles, names, strict=True)
    }
