"""The ``critic`` command: thin -- parse, call the library, print.

One module per command group, each adding its commands to the one Typer app
(:mod:`critic.cli.app`): :mod:`~critic.cli.train` (train, evaluate, compare, ensemble, predict,
transform), :mod:`~critic.cli.serve` (serve, web, monitor), :mod:`~critic.cli.registry`
(register, alias: MLflow's model registry), :mod:`~critic.cli.ground_truth`
(the ``critic ground-truth`` group), :mod:`~critic.cli.rollout` (the ``critic rollout``
group) and :mod:`~critic.cli.sagemaker` (package, and the
``critic sagemaker`` group). Options that set a config field are built from
the config's declaration (:mod:`critic.cli.options`), never declared here.
"""

from __future__ import annotations

import sys

import typer

# Imported for the commands they add to the app, in the order --help lists them.
from critic.cli import ground_truth, rollout, sagemaker, serve, train  # noqa: F401

# isort: split
# After serve's: register and alias are listed after the commands that make and serve bundles.
from critic.cli import registry  # noqa: F401
from critic.cli.app import app
from critic.errors import CriticError

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: a CriticError becomes one line on stderr and exit status 1."""
    try:
        app(args=argv, prog_name="critic")
    except CriticError as error:
        typer.echo(f"critic: error: {error}", err=True)
        sys.exit(1)
    except OSError as error:
        typer.echo(
            f"critic: error: {error.strerror or error}: {error.filename or ''}".rstrip(": "),
            err=True,
        )
        sys.exit(1)
