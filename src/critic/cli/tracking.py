"""Experiment tracking on the command line: the options the tracking commands share (built
from :class:`critic.tracking.settings.TrackingSettings`) and what they print. The registry's
commands are in :mod:`critic.cli.registry`."""

from __future__ import annotations

from pathlib import Path

import typer

from critic.cli.options import Option, given, options_of, pick, settings_of
from critic.tracking.settings import TrackingSettings

TRACKING_OPTIONS = options_of(TrackingSettings)
"""--track, --tracking-uri, --experiment, --run-name: critic train's and critic ensemble's."""
JUDGING_OPTIONS = pick(TRACKING_OPTIONS, "track", "tracking_uri")
"""critic evaluate's and critic compare's: they log to the runs of the bundles they judge."""
REGISTRY_OPTIONS = pick(TRACKING_OPTIONS, "tracking_uri", "experiment")


def tracking_settings(values: dict, required: bool = False) -> TrackingSettings | None:
    """The settings given (over CRITIC_TRACK, CRITIC_TRACKING_URI, ...) when tracking is asked
    for (always when ``required``), else None. Without MLflow, asking is one clear error here,
    before any work is done."""
    from critic.tracking.settings import import_mlflow

    settings = TrackingSettings.from_env(**given(TRACKING_OPTIONS, values))
    if not (settings.track or required):
        return None
    import_mlflow()
    return settings


def start_training_run(settings: TrackingSettings, config, out: Path, options: list[Option]):
    """The MLflow run of ``critic train``: every setting of ``config`` a parameter, named as
    the option that sets it."""
    from critic.models import recipe
    from critic.tracking.runs import TrackedRun, training_tags

    return TrackedRun.start(
        settings,
        Path(out).name,
        settings_of(options, config),
        training_tags(config, recipe(config.model.name)),
    )


def say_where(run) -> None:
    typer.echo(f"track: run {run.run_id}; see it with: {run.where()}")


def report_tracked(logged: dict) -> None:
    """On stderr (stdout holds the results): which run each judged bundle's figures went to."""
    for bundle, run in logged.items():
        if run is None:
            line = f"track: {bundle} records no MLflow run (trained without --track): not logged"
        else:
            line = f"track: {bundle}: logged to run {run.run_id}; see it with: {run.where()}"
        typer.echo(line, err=True)
