"""``critic ground-truth``: the true labels of served answers, as SageMaker Model Monitor
reads them (critic monitor --ground-truth reads them too)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from critic.cli.app import app

ground_truth_app = typer.Typer(
    help="Ground truth for the model-quality monitor: labels of served answers, by answer id.",
    no_args_is_help=True,
)
app.add_typer(ground_truth_app, name="ground-truth")


@ground_truth_app.command("export")
def export(
    feedback: Annotated[
        str,
        typer.Argument(
            help="A feedback file (critic serve's .sqlite), or the dynamodb://TABLE of "
            "servers on several machines."
        ),
    ],
    to: Annotated[
        Path,
        typer.Option(
            help="A .jsonl file, or a folder to fill in Model Monitor's layout "
            "(yyyy/mm/dd/hh/feedback.jsonl, by the hour of the vote)."
        ),
    ] = ...,  # type: ignore[assignment]
) -> None:
    """The votes of a feedback file as Model Monitor ground-truth records.

    One JSON line per vote that names its answer: {"groundTruthData": {"data": "1" or "0",
    "encoding": "CSV"}, "eventMetadata": {"eventId": ANSWER_ID}, "eventVersion": "0"}. "Right"
    on an answer keeps its label, "wrong" gives the other one. The feedback file is only read.
    """
    from critic.monitor.ground_truth import export_ground_truth
    from critic.serving.ab.dynamodb import is_dynamodb

    written, records = export_ground_truth(
        feedback if is_dynamodb(feedback) else Path(feedback), to
    )
    typer.echo(
        f"ground-truth: wrote {records:,} record(s) to {len(written)} file(s) under {to}", err=True
    )
