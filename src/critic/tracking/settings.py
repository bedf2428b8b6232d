"""Whether to track, and where: one settings object, and MLflow's import.

Tracking is off unless asked: ``--track`` (or ``CRITIC_TRACK=1``, or ``CRITIC_TRACKING_URI``
set). Where to: ``--tracking-uri``, else ``CRITIC_TRACKING_URI``, else MLflow's own
``MLFLOW_TRACKING_URI``, else a SQLite store beside the runs, ``sqlite:///runs/mlflow.db``,
whose artifacts go to ``runs/mlartifacts``: no server needed, and ``mlflow ui`` opens it.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from critic.config import parse_value, setting, setting_types
from critic.errors import CriticError

ENV_PREFIX = "CRITIC_"
DEFAULT_URI = "sqlite:///runs/mlflow.db"
ARTIFACTS_FOLDER = "mlartifacts"
"""A local store's artifacts: this folder beside its database file."""
INSTALL_HINT = "pip install 'critic[tracking]'"


@dataclass(frozen=True)
class TrackingSettings:
    """Experiment tracking. Each field is a ``--option`` of the commands that track, and a
    ``CRITIC_<NAME>`` environment variable."""

    track: bool = setting(
        False,
        "Log the run to MLflow: settings, per-epoch figures, metrics, plots and the bundle "
        "(also on when CRITIC_TRACKING_URI is set). Needs critic[tracking].",
    )
    tracking_uri: str | None = setting(
        None,
        "MLflow tracking server (http://HOST:PORT) or store; default CRITIC_TRACKING_URI, "
        f"MLFLOW_TRACKING_URI, then {DEFAULT_URI} (artifacts in runs/{ARTIFACTS_FOLDER}).",
    )
    experiment: str = setting("critic", "MLflow experiment the runs go to.")
    run_name: str | None = setting(None, "MLflow run name; default: the bundle folder's name.")

    def __post_init__(self) -> None:
        if not self.experiment.strip():
            raise CriticError("--experiment must not be empty")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> TrackingSettings:
        """``CRITIC_TRACKING_URI=...`` etc.; explicit ``overrides`` (the command line) win. A
        tracking URI in critic's own variable asks for tracking by itself."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, kind in setting_types(cls).items():
            variable = ENV_PREFIX + name.upper()
            if environ.get(variable):
                values[name] = parse_value(environ[variable], kind, variable)
        if values.get("tracking_uri") and "track" not in values:
            values["track"] = True
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def uri(self, recorded: str | None = None) -> str:
        """Where runs go: the URI given or in critic's variable, else ``recorded`` (the one a
        bundle's run was logged to), else MLflow's variable, else the local store."""
        return self.tracking_uri or recorded or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI

    def replace(self, **changes: Any) -> TrackingSettings:
        return dataclasses.replace(self, **changes)


def local_database(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None (a server, or another store)."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) else None


def where_to_look(uri: str, experiment: str, run_id: str) -> str:
    """How to see a run: its page on a server, else the command that opens a store in MLflow's
    UI."""
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}"
    return f"mlflow ui --backend-store-uri {uri}"


def import_mlflow(what: str = "--track"):
    """MLflow, imported here and only when asked for; without it, one clear error."""
    try:
        import mlflow
    except ImportError:
        raise CriticError(f"{what} needs MLflow, which is not installed: {INSTALL_HINT}") from None
    # MLflow draws a progress bar per artifact download, and tells of every run it ends.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return mlflow


def client(uri: str, what: str = "--track"):
    """An ``MlflowClient`` for ``uri``; a local SQLite store's folder is made first."""
    mlflow = import_mlflow(what)
    database = local_database(uri)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(tracker, uri: str, name: str) -> str:
    """The experiment called ``name``, made if missing; a local store's artifacts go beside its
    database (an absolute location, so that ``mlflow ui`` finds them from anywhere)."""
    found = tracker.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    database = local_database(uri)
    location = (
        (database.parent / ARTIFACTS_FOLDER).resolve().as_uri() if database is not None else None
    )
    return tracker.create_experiment(name, artifact_location=location)
