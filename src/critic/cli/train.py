"""Commands that make and judge models: train, models, embeddings, evaluate, compare,
ensemble, and answer reviews offline: predict, transform.

Options that set a config field are not declared here: :mod:`critic.cli.options` builds them
from :mod:`critic.config`, each field with its type, default and help.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from critic.apps.batch import TransformSettings
from critic.cli.app import (
    BundleArgument,
    ReviewsArgument,
    SourceOption,
    app,
    echo_json,
    show_report,
)
from critic.cli.options import by_section, given, options_of, pick, run_options, with_options
from critic.cli.tracking import JUDGING_OPTIONS, TRACKING_OPTIONS, tracking_settings
from critic.config import ModelConfig
from critic.data.embeddings import Word2VecSettings
from critic.errors import CriticError

RUN_OPTIONS = run_options()
DATA_OPTIONS = [option for option in RUN_OPTIONS if option.section == "data"]


@app.command()
@with_options(settings=RUN_OPTIONS, tracking=TRACKING_OPTIONS)
def train(
    out: Annotated[Path | None, typer.Option(help="Folder to write the bundle to.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run from its last epoch.")
    ] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where prepared data is cached (default ~/.cache/critic).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per epoch.")] = True,
    threads: Annotated[
        int | None,
        typer.Option(
            help="Intra-op threads, fixed (also CRITIC_THREADS or OMP_NUM_THREADS): for "
            "bit-identical reruns. Default: one a free core, looked at again as it runs, so "
            "a machine busy with something else is shared rather than fought over."
        ),
    ] = None,
    *,
    settings: dict,
    tracking: dict,
) -> None:
    """Train a model and write its bundle (config, vocabulary, weights, metrics, curves).

    --model nbsvm fits the n-gram logistic model (about a minute on the embedded reviews);
    the other models are neural and train for epochs. Every model is then calibrated on
    the validation split. An ensemble is made with critic ensemble.

    Settings left out come from the model's recipe (see critic models), then critic's defaults.

    Inside a SageMaker training job (SM_MODEL_DIR, SM_CHANNEL_TRAINING and SM_HPS set) the
    hyper-parameters come from SM_HPS, data paths are read from the training channel and the
    bundle is written to SM_MODEL_DIR; critic sagemaker train submits such a job.

    With --track (critic[tracking]) the run is logged to MLflow: every setting, each epoch's
    loss and accuracy, the final metrics, the plots and the bundle.
    """
    from critic.inference.bundle import save_training_result
    from critic.sagemaker.training import job_settings
    from critic.training.distributed import is_main_process
    from critic.training.train import train as run_training

    in_job = job_settings()
    if in_job is not None:
        # Any option of critic train may be a hyper-parameter.
        unknown = sorted(set(in_job) - set(inspect.signature(train).parameters))
        if unknown:
            raise CriticError(f"unknown hyper-parameter(s) in SM_HPS: {', '.join(unknown)}")
        settings.update({name: value for name, value in in_job.items() if name in settings})
        out = Path(in_job["out"])
        typer.echo(f"sagemaker: training job, writing the model to {out}")
    if out is None:
        raise CriticError("--out is required: the folder to write the bundle to")
    config = _run_config(settings)
    tracked = tracking_settings(tracking)  # no MLflow: one line, before any work
    run = None
    if tracked is not None and is_main_process():
        from critic.cli.tracking import start_training_run

        run = start_training_run(tracked, config, out, RUN_OPTIONS)
    try:
        result = run_training(
            config,
            out,
            resume=resume,
            cache_dir=cache_dir,
            progress=progress,
            log=typer.echo,
            threads=threads,
            on_epoch=run.epoch if run is not None else None,
        )
    except BaseException as error:
        if run is not None:
            run.end("KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        if not isinstance(error, KeyboardInterrupt):
            raise
        typer.echo(
            f"\ninterrupted: the last completed epoch is saved; continue with "
            f"critic train --out {out} --resume",
            err=True,
        )
        raise typer.Exit(130) from None
    if not is_main_process():
        return  # under torchrun, rank 0 alone writes the bundle (after every rank is done)
    save_training_result(out, result)
    from critic.inference.domain_fit import fit_bundle_domain

    fit_bundle_domain(out, log=typer.echo)
    typer.echo(f"bundle: {out} (test accuracy {result.metrics['test_accuracy']:.4f})")
    if run is not None:
        from critic.cli.tracking import say_where
        from critic.tracking.runs import finish_training

        finish_training(run, out, result.metrics, result.history)
        say_where(run)


@contextmanager
def share_the_machine(what: str, adapt: bool = True) -> Iterator[None]:
    """torch's threads, while the block runs, for the cores other processes leave free, as
    critic train chooses them (critic.system.ThreadGovernor; CRITIC_THREADS or OMP_NUM_THREADS
    fix them): chosen at start and, with ``adapt``, looked at again between batches
    (critic.system.keep_pace). Said on stderr at the first batch of torch work: what these
    commands print on stdout stays their results, and a mistake in the input its one line."""
    from critic.system import ThreadGovernor

    governor = ThreadGovernor(
        log=lambda line: typer.echo(line, err=True),
        what=what,
        adapt=adapt,
        say_at_first_batch=True,  # a mistake in the input stays the one line on stderr
    )
    governor.start()
    try:
        yield
    finally:
        governor.stop()


def _run_config(settings: dict):
    """The run's settings: those given (typed, SM_HPS strings included), over the model's
    recipe, over the defaults."""
    from critic.models import run_config

    sections = by_section(RUN_OPTIONS, settings)
    model = sections.setdefault("model", {}).pop("name", ModelConfig.name)
    return run_config(str(model), **sections)


@app.command()
def models() -> None:
    """List the architectures, each with the settings it trains with by default (JSON lines)."""
    from critic.models import model_names, recipe

    for name in model_names():
        echo_json({"model": name, "recipe": recipe(name)})


embeddings_app = typer.Typer(
    help="Word vectors (word2vec) for initialising a model's embeddings.", no_args_is_help=True
)
app.add_typer(embeddings_app, name="embeddings")
EMBEDDINGS_DATA_OPTIONS = pick(
    DATA_OPTIONS, "data", "max_reviews", "split_seed", "text_column", "label_column"
)
WORD2VEC_OPTIONS = options_of(Word2VecSettings)


@embeddings_app.command("train")
@with_options(data_settings=EMBEDDINGS_DATA_OPTIONS, word2vec=WORD2VEC_OPTIONS)
def embeddings_train(
    out: Annotated[Path, typer.Option(help="The word2vec text file to write.")] = ...,  # type: ignore[assignment]
    *,
    data_settings: dict,
    word2vec: dict,
) -> None:
    """Train word2vec (skip-gram with negative sampling by default) on the training split's
    reviews, tokenised as critic does, and write the word2vec text format. Use it with
    critic train --embeddings FILE."""
    from critic.config import DataConfig
    from critic.data.embeddings import Word2VecSettings, save_word2vec_text, train_word2vec
    from critic.data.prepare import load_splits
    from critic.data.text import tokenize_many

    settings = Word2VecSettings(**given(WORD2VEC_OPTIONS, word2vec))
    config = DataConfig.from_dict(
        by_section(EMBEDDINGS_DATA_OPTIONS, data_settings).get("data", {})
    )
    reviews = load_splits(config)["train"]
    vectors = train_word2vec(tokenize_many(reviews.texts), settings, log=typer.echo)
    save_word2vec_text(vectors, out)
    typer.echo(f"embeddings: {out} ({len(vectors):,} words x {vectors.dimension})")


@app.command()
@with_options(tracking=TRACKING_OPTIONS)
def ensemble(
    members: Annotated[
        list[Path], typer.Argument(help="Two or more trained bundles, trained on the same data.")
    ],
    out: Annotated[Path, typer.Option(help="Folder to write the ensemble bundle to.")] = ...,  # type: ignore[assignment]
    short_reviews: Annotated[
        bool,
        typer.Option(
            help="Also fit weights for short reviews, on crops of a few sentences of the "
            "validation reviews, mixed in by a review's length."
        ),
    ] = True,
    *,
    tracking: dict,
) -> None:
    """Combine trained bundles into one: their calibrated log-odds, weighted.

    The weights (non-negative) and a bias are fitted on the members' shared validation split;
    the ensemble is then calibrated and evaluated on the test split like a trained model. The
    bundle holds a copy of every member and is served like any other. With --track, its
    MLflow run names each member's run (critic.member.NAME.run_id) as its parents.
    """
    from critic.inference.ensemble import build_ensemble

    tracked = tracking_settings(tracking)

    with share_the_machine("ensemble"):
        metrics = build_ensemble(members, out, short_reviews=short_reviews, log=typer.echo)
    typer.echo(f"bundle: {out} (test accuracy {metrics['test_accuracy']:.4f})")
    if tracked is not None:
        from critic.cli.tracking import say_where
        from critic.tracking.runs import track_ensemble

        say_where(track_ensemble(tracked, out, members, metrics))


@app.command()
def domain(bundle: BundleArgument) -> None:
    """Fit the bundle's out-of-domain signal: the "domain" score of every answer.

    critic train and critic ensemble fit it as they finish; this fits it again, or for a
    bundle from before there was one, on the bundle's own split: the class Gaussians of a
    neural model's representation from its training reviews, the scale of each feature (unknown
    words, length, the distance from the training reviews) and the threshold from the
    validation reviews, so that about 95% of them score typical (at most 1). The bundle's
    manifest signs the new files.
    """
    from critic.inference.domain_fit import fit_bundle_domain

    with share_the_machine("domain"):
        fit_bundle_domain(bundle, log=typer.echo)


EVALUATE_DATA_OPTIONS = pick(
    DATA_OPTIONS, "data", "text_column", "label_column", "max_reviews", show_default=False
)


@app.command()
@with_options(data_settings=EVALUATE_DATA_OPTIONS, tracking=JUDGING_OPTIONS)
def evaluate(
    bundle: BundleArgument,
    split: Annotated[str, typer.Option(help="train, validation, test, or all.")] = "test",
    source: SourceOption = None,
    plots: Annotated[
        Path | None,
        typer.Option(help="Write confusion_matrix.png, roc_curve.png and reliability.png here."),
    ] = None,
    *,
    data_settings: dict,
    tracking: dict,
) -> None:
    """Print accuracy, precision, recall, F1, ROC-AUC, log loss, the confusion matrix, and
    calibration (ECE of the raw probability and of the calibrated score) as JSON; with star
    ratings in the data, the rating's mean absolute error and Spearman correlation too.

    Without --data, the bundle's own data and split are used, so --split test is the held-out
    test set the model never saw. --source rotten_tomatoes judges the model on a second domain:
    every review of that source. With --track, the figures (and plots) go to the MLflow run
    that trained the bundle, as evaluate/DATA/SPLIT/NAME.
    """
    from critic.evaluation.evaluate import evaluate_predictor, evaluation_data
    from critic.inference.predictor import Predictor

    tracked = tracking_settings(tracking)

    with share_the_machine("evaluate"):
        predictor = Predictor.load(bundle)
        data, split = evaluation_data(
            predictor.bundle.config.data,
            split,
            data=data_settings["data"],
            source=source,
            text_column=data_settings["text_column"],
            label_column=data_settings["label_column"],
        )
        result = evaluate_predictor(predictor, data, split, data_settings["max_reviews"], plots)
    echo_json({"bundle": str(bundle), **result})
    if tracked is not None:
        from critic.cli.tracking import report_tracked
        from critic.tracking.runs import track_evaluation

        logged = track_evaluation(tracked, bundle, result, source or data_settings["data"])
        report_tracked({str(bundle): logged})


COMPARE_SAMPLE_OPTIONS = pick(DATA_OPTIONS, "text_column", "label_column", "max_reviews")


@app.command()
@with_options(sample=COMPARE_SAMPLE_OPTIONS, tracking=JUDGING_OPTIONS)
def compare(
    bundles: Annotated[
        list[Path], typer.Argument(help="Two or more trained bundle folders.", show_default=False)
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Also write report.md, report.json and accuracy.png to this folder."),
    ] = None,
    source: SourceOption = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap (and of the sample).")] = 0,
    repeats: Annotated[
        int, typer.Option(help="Time N passes over the reviews per model and keep the fastest.")
    ] = 1,
    *,
    sample: dict,
    tracking: dict,
) -> None:
    """Offline A/B: judge the bundles on the same reviews and print a Markdown report.

    Per model: accuracy with a 95% paired bootstrap interval, latency per review and reviews/s.
    Per pair: the accuracy difference with its interval, the agreement rate and McNemar's exact
    test p-value. Without --source the reviews are the held-out test split the bundles share
    (they must have been trained on the same data and split). Without --out nothing is written.
    With --track, each bundle's figures go to the MLflow run that trained it.
    """
    from critic.evaluation.compare import compare_bundles, write_report
    from critic.inference.predictor import Predictor

    tracked = tracking_settings(tracking)

    given = {name: value for name, value in sample.items() if value is not None}
    # Chosen once: compare times its models, and each must be timed on the same threads.
    with share_the_machine("compare", adapt=False):
        comparison = compare_bundles(
            bundles,
            source,
            load=Predictor.load,
            **given,
            resamples=resamples,
            seed=seed,
            repeats=repeats,
            log=lambda line: typer.echo(line, err=True),
        )
    show_report("compare", comparison, out, write_report)
    if tracked is not None:
        from critic.cli.tracking import report_tracked
        from critic.tracking.runs import track_comparison

        report_tracked(track_comparison(tracked, comparison))


@app.command()
def predict(
    bundle: BundleArgument,
    reviews: ReviewsArgument = None,
    explain: Annotated[
        bool,
        typer.Option(help="Add each word's weight: how much, and which way, it pushed the answer."),
    ] = False,
) -> None:
    """Print one JSON object per review: label, probability of positive (raw and calibrated
    score), rating, tokens.

    From stdin, every line gets exactly one answer line, in order, read and answered a few
    at a time: a line that cannot be answered (a blank one) gets an error record there,
    {"line": N, "status": 400, "message": ...}. critic transform does the same for files."""
    from critic.apps.batch import answer_stream
    from critic.inference.predictor import Predictor
    from critic.serving.codec import JSON_LINES, encode_predictions

    predictor = Predictor.load(bundle)
    if reviews:
        # The same bytes as the answer to the same reviews on stdin.
        predictions = predictor.predict(list(reviews), explain=explain)
        sys.stdout.buffer.write(encode_predictions(predictions, JSON_LINES))
        return
    answered = False
    # A stream can run for long: it shares the machine as transform does (a few reviews given
    # as arguments are answered before a look at the cores would end).
    with share_the_machine("predict"):
        for lines in answer_stream(predictor, sys.stdin.buffer, explain=explain):
            sys.stdout.buffer.write(lines)
            sys.stdout.buffer.flush()
            answered = True
    if not answered:
        raise CriticError("no reviews given: pass them as arguments or one per line on stdin")


TRANSFORM_OPTIONS = options_of(TransformSettings)


@app.command()
@with_options(settings=TRANSFORM_OPTIONS)
def transform(
    bundle: BundleArgument,
    inputs: Annotated[
        list[Path], typer.Argument(help="Files to answer, one record per line.", show_default=False)
    ],
    output: Annotated[Path, typer.Option(help="Folder for the answers: INPUT-NAME.out.")] = ...,  # type: ignore[assignment]
    progress: Annotated[bool, typer.Option(help="Show a progress bar per file.")] = True,
    *,
    settings: dict,
) -> None:
    """Batch prediction, SageMaker Batch Transform's way (SplitType=Line): one answer line per
    input line, in order, in OUTPUT/INPUT-NAME.out, written only once the whole file is done.

    Inputs are text lines, JSON lines ({"text": ...} or {"instances": [...]}) or CSV with a
    header. A line that cannot be answered gets an error record on its own line, with its
    line number. An interrupted run, started again with the same command, continues where it
    stopped. critic sagemaker transform runs the same job on SageMaker.
    """
    from critic.apps.batch import TransformSettings, transform_files

    chosen = TransformSettings(**given(TRANSFORM_OPTIONS, settings))
    with share_the_machine("transform"):
        results = transform_files(
            bundle,
            inputs,
            output,
            chosen,
            show_progress=progress,
            log=lambda line: typer.echo(line, err=True),
        )
        for result in results:
            echo_json(
                {
                    "input": result.input,
                    "output": result.output,
                    "records": result.records,
                    "errors": result.errors,
                }
            )
