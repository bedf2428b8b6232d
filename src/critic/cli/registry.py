"""The model registry's commands: register (a bundle as a model version) and alias (move
an alias). ``critic serve --variant NAME=models:/MODEL@ALIAS`` serves what they register."""

from __future__ import annotations

from typing import Annotated

import typer

from critic.cli.app import BundleArgument, app, echo_json
from critic.cli.options import pick, with_options
from critic.cli.tracking import REGISTRY_OPTIONS, tracking_settings


@app.command()
@with_options(tracking=REGISTRY_OPTIONS)
def register(
    bundle: BundleArgument,
    name: Annotated[str, typer.Option(help="The registered model's name.")] = "critic",
    alias: Annotated[
        list[str] | None,
        typer.Option(help="Alias to point at the new version (repeatable): champion, challenger."),
    ] = None,
    *,
    tracking: dict,
) -> None:
    """Register a bundle as the next version of a model in MLflow's registry.

    The version is a pyfunc model wrapping critic's Predictor:
    mlflow.pyfunc.load_model("models:/NAME/VERSION").predict(["text", ...]) answers as
    critic predict does. It is logged to the run that trained the bundle when that run was
    tracked (critic train --track). Serve it with
    critic serve --variant champion=models:/NAME@champion. Needs critic[tracking].
    """
    from critic.tracking.registry import register_bundle

    settings = tracking_settings(tracking, required=True)
    registered = register_bundle(settings, bundle, name, alias)
    echo_json(
        {
            "model": registered.name,
            "version": registered.version,
            "uri": registered.uri,
            "aliases": alias or [],
        }
    )


@app.command("alias")
@with_options(tracking=pick(REGISTRY_OPTIONS, "tracking_uri"))
def alias_command(
    name: Annotated[str, typer.Argument(help="The registered model, e.g. critic.")],
    alias: Annotated[str, typer.Argument(help="The alias to move, e.g. champion.")],
    target: Annotated[
        str,
        typer.Argument(help="A version number, or @ALIAS: the version another alias names."),
    ],
    *,
    tracking: dict,
) -> None:
    """Point a registered model's alias at a version: critic alias critic champion @challenger
    promotes the challenger's version. Needs critic[tracking]."""
    from critic.tracking.registry import move_alias

    settings = tracking_settings(tracking, required=True)
    version = move_alias(settings, name, alias, target)
    echo_json({"model": name, "alias": alias, "version": version})
