"""The root ``critic`` command and what its command groups share: the Typer app, the
arguments several commands take, and printing JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from critic.errors import CriticError

app = typer.Typer(
    name="critic",
    help="Train, evaluate and query a sentiment model for movie reviews (IMDB, PyTorch).",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Markdown joins the lines of a wrapped docstring; rich mode would keep every break.
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)

REGION_HELP = "AWS region (default: from the environment)."

# Shared by the commands that take them.
BundleArgument = Annotated[Path, typer.Argument(help="A trained bundle folder.")]
ReviewsArgument = Annotated[
    list[str] | None,
    typer.Argument(help="Reviews to judge; without any, one per line on stdin."),
]
EndpointArgument = Annotated[str, typer.Argument(help="Endpoint name.")]
RegionOption = Annotated[str | None, typer.Option(help=REGION_HELP)]
SourceOption = Annotated[
    str | None,
    typer.Option(
        help="Judge on every review of this source, not a split: rotten_tomatoes, amazon "
        "(product-review snippets, from VADER's source package), or a path to "
        "an aclImdb folder or .tar.gz, a .csv or a .jsonl file."
    ),
]


def echo_json(payload) -> None:
    typer.echo(json.dumps(payload, ensure_ascii=False))


def show_report(command: str, report, out: Path | None, write) -> None:
    """Print a report's Markdown (critic compare, critic monitor); with --out, also write its
    files with ``write(report, out)`` and say where, on stderr."""
    written = write(report, out) if out is not None else []
    typer.echo(report.to_markdown())
    if written:
        typer.echo(f"{command}: wrote {', '.join(str(path) for path in written)}", err=True)


def reviews_or_stdin(reviews: list[str] | None) -> list[str]:
    """The reviews given as arguments, else one per line on stdin (blank lines skipped)."""
    texts = (
        list(reviews)
        if reviews
        else [line for line in sys.stdin.read().splitlines() if line.strip()]
    )
    if not texts:
        raise CriticError("no reviews given: pass them as arguments or one per line on stdin")
    return texts
