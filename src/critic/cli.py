"""The ``critic`` command: thin -- parse, call the library, print."""

from __future__ import annotations

import json
import os
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

SAGEMAKER_TRAINING_VARIABLES = ("SM_MODEL_DIR", "SM_CHANNEL_TRAINING", "SM_HPS")

DataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="embedded (IMDB, the default), rotten_tomatoes, or a path: an aclImdb folder or "
        ".tar.gz, a .csv or a .jsonl file.",
    ),
]


RegionOption = Annotated[
    str | None, typer.Option(help="AWS region (default: from the environment).")
]


def _echo_json(payload) -> None:
    typer.echo(json.dumps(payload, ensure_ascii=False))


def _sagemaker_settings() -> dict | None:
    """Hyper-parameters and paths of a SageMaker training job, when running inside one."""
    if not all(name in os.environ for name in SAGEMAKER_TRAINING_VARIABLES):
        return None
    try:
        hyperparameters = json.loads(os.environ["SM_HPS"] or "{}")
    except ValueError as error:
        raise CriticError(f"SM_HPS is not valid JSON ({error})") from None
    if not isinstance(hyperparameters, dict):
        raise CriticError("SM_HPS must be a JSON object of hyper-parameters")
    settings = {key.replace("-", "_"): value for key, value in hyperparameters.items()}
    channel = Path(os.environ["SM_CHANNEL_TRAINING"])
    data = settings.get("data")
    if data is None or data in ("embedded", "imdb", "rotten_tomatoes"):
        settings.setdefault("data", "embedded")
    else:
        settings["data"] = str(channel / data)
    settings["out"] = os.environ["SM_MODEL_DIR"]
    return settings


@app.command()
def train(
    model: Annotated[str, typer.Option(help="Architecture, by registry name.")] = "lstm",
    out: Annotated[Path | None, typer.Option(help="Folder to write the bundle to.")] = None,
    data: DataOption = None,
    epochs: Annotated[
        int | None, typer.Option(help="Most epochs to train (early stopping may end sooner).")
    ] = None,
    max_reviews: Annotated[
        int | None, typer.Option(help="Train on a stratified sample of at most N reviews.")
    ] = None,
    vocab_size: Annotated[
        int | None, typer.Option(help="Vocabulary size, with padding and unknown.")
    ] = None,
    max_length: Annotated[
        int | None,
        typer.Option(help="Cut reviews to their first N tokens (default: 500; nbsvm: 5000)."),
    ] = None,
    embedding_dim: Annotated[
        int | None, typer.Option(help="Embedding size (with --embeddings: the file's).")
    ] = None,
    hidden_dim: Annotated[int | None, typer.Option(help="Hidden size of recurrent layers.")] = None,
    num_layers: Annotated[int | None, typer.Option(help="Recurrent layers.")] = None,
    dropout: Annotated[
        float | None, typer.Option(help="Dropout on embeddings, between layers and on output.")
    ] = None,
    bidirectional: Annotated[
        bool | None, typer.Option(help="gru, cnn-lstm: read reviews both ways.", show_default=False)
    ] = None,
    cell: Annotated[str | None, typer.Option(help="attention: lstm or gru cells.")] = None,
    pooling: Annotated[
        str | None,
        typer.Option(
            help="lstm, gru, bilstm, cnn-lstm: last (final states), max or mean over time."
        ),
    ] = None,
    conv_channels: Annotated[
        int | None, typer.Option(help="cnn-lstm: convolution filters.")
    ] = None,
    kernel_size: Annotated[
        int | None, typer.Option(help="cnn-lstm: convolution width in tokens.")
    ] = None,
    pool_size: Annotated[int | None, typer.Option(help="cnn-lstm: max-pooling window.")] = None,
    ngram_order: Annotated[
        int | None, typer.Option(help="ngrams: longest n-gram (1 = words only).")
    ] = None,
    ngram_buckets: Annotated[
        int | None, typer.Option(help="ngrams: hash buckets for n-grams of 2+ words.")
    ] = None,
    ngram_max: Annotated[int | None, typer.Option(help="nbsvm: n-grams of 1 to N words.")] = None,
    min_df: Annotated[
        int | None, typer.Option(help="nbsvm: keep n-grams found in at least N training reviews.")
    ] = None,
    c: Annotated[
        float | None,
        typer.Option(
            "--c", help="nbsvm: inverse regularisation (C); default: picked on validation."
        ),
    ] = None,
    select_ngrams: Annotated[
        bool | None,
        typer.Option(help="nbsvm: also pick the n-gram length on validation.", show_default=False),
    ] = None,
    embeddings: Annotated[
        str | None,
        typer.Option(
            help="word2vec or GloVe text file to start the word embeddings from "
            "(see critic embeddings train), or word2vec: train word2vec on the training "
            "split first; none: start from random vectors (overrides the model's recipe)."
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Reviews per batch.")] = None,
    learning_rate: Annotated[float | None, typer.Option(help="Adam learning rate.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Adam weight decay.")] = None,
    patience: Annotated[
        int | None, typer.Option(help="Stop after N epochs without a better validation loss.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for weights, shuffling and dropout.")] = 0,
    split_seed: Annotated[
        int, typer.Option(help="Seed of the train/validation/test split.")
    ] = 1234,
    text_column: Annotated[str, typer.Option(help="CSV/JSONL column with the review.")] = "text",
    label_column: Annotated[
        str, typer.Option(help="CSV/JSONL column with the 0/1 label.")
    ] = "label",
    rating_column: Annotated[
        str | None, typer.Option(help="CSV/JSONL column with a 1-10 rating.")
    ] = None,
    device: Annotated[
        str, typer.Option(help="auto (a CUDA GPU when present), cpu or cuda.")
    ] = "auto",
    max_seconds: Annotated[
        float | None, typer.Option(help="Stop after the epoch that crosses this many seconds.")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run from its last epoch.")
    ] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where prepared data is cached (default ~/.cache/critic).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per epoch.")] = True,
    sagemaker: Annotated[
        bool,
        typer.Option(
            "--sagemaker", help="Submit this training as a SageMaker training job instead."
        ),
    ] = False,
    role: Annotated[
        str | None, typer.Option(help="--sagemaker: the job's IAM execution role ARN.")
    ] = None,
    bucket: Annotated[
        str | None, typer.Option(help="--sagemaker: S3 bucket for code and output.")
    ] = None,
    instance_type: Annotated[
        str, typer.Option(help="--sagemaker: training instance type.")
    ] = "ml.m5.xlarge",
    job_name: Annotated[
        str | None, typer.Option(help="--sagemaker: job name (default: critic-MODEL-TIME).")
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="--sagemaker: AWS region (default: from the environment).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="--sagemaker: wait for the job to end.")] = False,
) -> None:
    """Train a model and write its bundle (config, vocabulary, weights, metrics, curves).

    --model nbsvm fits the n-gram logistic model (about a minute on the embedded reviews);
    the other models are neural and train for epochs. Every model is then calibrated on
    the validation split. An ensemble is made with critic ensemble.

    Settings left out come from the model's recipe (see critic models), then critic's defaults.

    Inside a SageMaker training job (SM_MODEL_DIR, SM_CHANNEL_TRAINING and SM_HPS set) the
    hyper-parameters come from SM_HPS, data paths are read from the training channel and the
    bundle is written to SM_MODEL_DIR.
    """
    # First, before any import adds a local name: exactly the command's options.
    options = dict(locals())
    from critic.artifact import save_training_result
    from critic.train import train as run_training

    if sagemaker:
        _submit_training_job(options)
        return
    in_job = _sagemaker_settings()
    if in_job is not None:
        unknown = sorted(set(in_job) - set(options) - set(_SUBMIT_ONLY))
        if unknown:
            raise CriticError(f"unknown hyper-parameter(s) in SM_HPS: {', '.join(unknown)}")
        options.update(in_job)
        typer.echo(f"sagemaker: training job, writing the model to {options['out']}")
    if options["out"] is None:
        raise CriticError("--out is required: the folder to write the bundle to")
    out_path = Path(options["out"])
    config = _run_config(options)
    try:
        result = run_training(
            config, out_path, resume=resume, cache_dir=cache_dir, progress=progress, log=typer.echo
        )
    except KeyboardInterrupt:
        typer.echo(
            f"\ninterrupted: the last completed epoch is saved; continue with "
            f"critic train --out {out_path} --resume",
            err=True,
        )
        raise typer.Exit(130) from None
    save_training_result(out_path, result)
    typer.echo(f"bundle: {out_path} (test accuracy {result.metrics['test_accuracy']:.4f})")


# Where each training option goes, and its type (SageMaker passes hyper-parameters as strings).
_TRAIN_SETTINGS = {
    "data": {"text_column": str, "label_column": str, "rating_column": str, "vocab_size": int,
             "max_length": int, "max_reviews": int, "split_seed": int},
    "model": {"embedding_dim": int, "hidden_dim": int, "num_layers": int, "dropout": float,
              "bidirectional": "bool", "cell": str, "pooling": str, "conv_channels": int,
              "kernel_size": int, "pool_size": int, "ngram_order": int, "ngram_buckets": int,
              "ngram_max": int, "min_df": int, "c": float, "select_ngrams": "bool"},
    "train": {"epochs": int, "batch_size": int, "learning_rate": float, "weight_decay": float,
              "patience": int, "seed": int, "device": str, "max_seconds": float,
              "embeddings": str},
}  # fmt: skip


def _as_bool(value) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0"):
            raise CriticError(f"expected true or false, got {value!r}")
        return value.lower() in ("true", "1")
    return bool(value)


def _run_config(options: dict):
    """The run's settings: the options given, over the model's recipe, over the defaults."""
    from critic.models import run_config

    sections: dict[str, dict] = {}
    for section, settings in _TRAIN_SETTINGS.items():
        sections[section] = {}
        for name, kind in settings.items():
            value = options.get(name)
            if value is not None:
                sections[section][name] = _as_bool(value) if kind == "bool" else kind(value)
    if str(sections["train"].get("embeddings", "")).lower() == "none":
        sections["train"]["embeddings"] = None  # random embeddings, whatever the recipe says
    sections["data"]["source"] = str(options["data"] or "embedded")
    return run_config(str(options["model"]), **sections)


# Options that describe the submission, not the training: never sent as hyper-parameters.
_SUBMIT_ONLY = ("out", "resume", "cache_dir", "progress", "sagemaker", "role", "bucket",
                "instance_type", "job_name", "region", "wait", "device")  # fmt: skip


def _submit_training_job(options: dict) -> None:
    """``critic train --sagemaker``: the options that differ from their defaults become the job's
    hyper-parameters; ``--data s3://...`` becomes its training channel."""
    import inspect
    import time

    from critic.sagemaker import submit_training_job

    for required in ("role", "bucket"):
        if not options[required]:
            raise CriticError(f"--sagemaker needs --{required}")
    defaults = {name: p.default for name, p in inspect.signature(train).parameters.items()}
    hyperparameters = {
        name: value
        for name, value in options.items()
        if name not in _SUBMIT_ONLY and name != "data" and value != defaults[name]
    }
    data = options["data"]
    data_s3_uri = None
    if data and data.startswith("s3://"):
        data_s3_uri = data
    elif data:
        hyperparameters["data"] = data
    name = options["job_name"] or f"critic-{options['model']}-{time.strftime('%Y%m%d-%H%M%S')}"
    job = submit_training_job(
        name, options["role"], options["bucket"], hyperparameters,
        instance_type=options["instance_type"], data_s3_uri=data_s3_uri, region=options["region"],
        wait=options["wait"], log=typer.echo,
    )  # fmt: skip
    _echo_json({"training_job": job.name, "status": job.status, "output": job.output_uri})


@app.command()
def models() -> None:
    """List the architectures, each with the settings it trains with by default (JSON lines)."""
    from critic.models import model_names, recipe

    for name in model_names():
        _echo_json({"model": name, "recipe": recipe(name)})


embeddings_app = typer.Typer(
    help="Word vectors (word2vec) for initialising a model's embeddings.", no_args_is_help=True
)
app.add_typer(embeddings_app, name="embeddings")


@embeddings_app.command("train")
def embeddings_train(
    out: Annotated[Path, typer.Option(help="The word2vec text file to write.")] = ...,  # type: ignore[assignment]
    data: DataOption = None,
    max_reviews: Annotated[
        int | None, typer.Option(help="Use a stratified sample of at most N reviews.")
    ] = None,
    split_seed: Annotated[
        int,
        typer.Option(help="Seed of the split: use the model's, so its test reviews stay unseen."),
    ] = 1234,
    text_column: Annotated[str, typer.Option(help="CSV/JSONL column with the review.")] = "text",
    label_column: Annotated[
        str, typer.Option(help="CSV/JSONL column with the 0/1 label.")
    ] = "label",
    dimension: Annotated[int, typer.Option(help="Vector size.")] = 100,
    window: Annotated[int, typer.Option(help="Context words on each side.")] = 5,
    negative: Annotated[int, typer.Option(help="Negative samples per word.")] = 5,
    min_count: Annotated[int, typer.Option(help="Ignore words seen fewer times.")] = 2,
    epochs: Annotated[int, typer.Option(help="Passes over the reviews.")] = 5,
    cbow: Annotated[
        bool, typer.Option("--cbow/--skip-gram", help="CBOW instead of skip-gram.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    workers: Annotated[int, typer.Option(help="Training threads.")] = 2,
) -> None:
    """Train word2vec (skip-gram with negative sampling by default) on the training split's
    reviews, tokenised as critic does, and write the word2vec text format. Use it with
    critic train --embeddings FILE."""
    from critic.config import DataConfig
    from critic.data.embeddings import Word2VecSettings, save_word2vec_text, train_word2vec
    from critic.data.prepare import load_splits
    from critic.data.text import tokenize_many

    settings = Word2VecSettings(
        dimension=dimension, window=window, negative=negative, min_count=min_count,
        epochs=epochs, cbow=cbow, seed=seed, workers=workers,
    )  # fmt: skip
    config = DataConfig(
        source=data or "embedded", text_column=text_column, label_column=label_column,
        max_reviews=max_reviews, split_seed=split_seed,
    )  # fmt: skip
    reviews = load_splits(config)["train"]
    vectors = train_word2vec(tokenize_many(reviews.texts), settings, log=typer.echo)
    save_word2vec_text(vectors, out)
    typer.echo(f"embeddings: {out} ({len(vectors):,} words x {vectors.dimension})")


@app.command()
def evaluate(
    bundle: Annotated[Path, typer.Argument(help="A trained bundle folder.")],
    data: DataOption = None,
    split: Annotated[str, typer.Option(help="train, validation, test, or all.")] = "test",
    source: Annotated[
        str | None,
        typer.Option(
            help="Evaluate on every review of this source, not a split of it: rotten_tomatoes, "
            "or a path to an aclImdb folder or .tar.gz, a .csv or a .jsonl file."
        ),
    ] = None,
    text_column: Annotated[
        str | None, typer.Option(help="CSV/JSONL column with the review (default: the bundle's).")
    ] = None,
    label_column: Annotated[
        str | None,
        typer.Option(help="CSV/JSONL column with the 0/1 label (default: the bundle's)."),
    ] = None,
    max_reviews: Annotated[
        int | None, typer.Option(help="Evaluate on a sample of N reviews.")
    ] = None,
    plots: Annotated[
        Path | None,
        typer.Option(help="Write confusion_matrix.png, roc_curve.png and reliability.png here."),
    ] = None,
) -> None:
    """Print accuracy, precision, recall, F1, ROC-AUC, log loss, the confusion matrix, and
    calibration (ECE of the raw probability and of the calibrated score) as JSON; with star
    ratings in the data, the rating's mean absolute error and Spearman correlation too.

    Without --data, the bundle's own data and split are used, so --split test is the held-out
    test set the model never saw. --source rotten_tomatoes judges the model on a second domain:
    every review of that source.
    """
    from critic.calibration import sigmoid
    from critic.data.prepare import load_splits
    from critic.data.sources import describe_source, load_all_reviews
    from critic.data.split import stratified_sample
    from critic.evaluate import (
        calibration_metrics,
        classification_metrics,
        plot_evaluation,
        plot_reliability,
    )
    from critic.predictor import Predictor

    if split not in ("train", "validation", "test", "all"):
        raise CriticError(f"--split must be train, validation, test or all, not {split!r}")
    if source is not None and data is not None:
        raise CriticError("give --source (every review of it) or --data (a split of it), not both")
    predictor = Predictor.load(bundle)
    data_config = predictor.bundle.config.data
    columns = {
        key: value
        for key, value in (("text_column", text_column), ("label_column", label_column))
        if value is not None
    }
    data_config = data_config.replace(**columns)
    if source is not None:
        data_config, split = data_config.replace(source=source, max_reviews=None), "all"
    elif data is not None:
        data_config = data_config.replace(source=data, max_reviews=None)
    if split == "all":
        reviews = load_all_reviews(
            data_config.source,
            data_config.text_column,
            data_config.label_column,
            data_config.rating_column,
        )
    else:
        reviews = load_splits(data_config)[split]
    if max_reviews is not None:
        reviews = stratified_sample(reviews, max_reviews, data_config.split_seed)
    logits = predictor.predict_logits(reviews.texts)
    probabilities = sigmoid(logits)
    calibration = calibration_metrics(
        predictor.calibration, {"": (reviews.labels, logits, reviews.ratings)}, diagram_split=""
    )
    reliability = calibration.pop("reliability")
    result = {
        "bundle": str(bundle),
        "model": predictor.name,
        "kind": predictor.kind,
        "data": describe_source(data_config.source),
        "split": split,
        **classification_metrics(reviews.labels, probabilities),
        **calibration,
    }
    if plots is not None:
        title = f"{predictor.name} on {result['data']}, {split}"
        written = plot_evaluation(reviews.labels, probabilities, plots, title)
        plot_reliability(reliability, plots / "reliability.png", title)
        result["plots"] = [str(path) for path in [*written, plots / "reliability.png"]]
    _echo_json(result)


@app.command()
def compare(
    bundles: Annotated[
        list[Path], typer.Argument(help="Two or more trained bundle folders.", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option(help="Folder for report.md, report.json and accuracy.png.")
    ] = ...,  # type: ignore[assignment]
    source: Annotated[
        str | None,
        typer.Option(
            help="Compare on every review of this source instead of the bundles' common test "
            "split: rotten_tomatoes, or a path to an aclImdb folder or .tar.gz, a .csv or .jsonl."
        ),
    ] = None,
    text_column: Annotated[
        str, typer.Option(help="--source CSV/JSONL: column with the review.")
    ] = "text",
    label_column: Annotated[
        str, typer.Option(help="--source CSV/JSONL: column with the 0/1 label.")
    ] = "label",
    max_reviews: Annotated[
        int | None, typer.Option(help="Compare on a stratified sample of N reviews.")
    ] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap (and of the sample).")] = 0,
    repeats: Annotated[
        int, typer.Option(help="Time N passes over the reviews per model and keep the fastest.")
    ] = 1,
) -> None:
    """Offline A/B: judge the bundles on the same reviews and print a Markdown report.

    Per model: accuracy with a 95% paired bootstrap interval, latency per review and reviews/s.
    Per pair: the accuracy difference with its interval, the agreement rate and McNemar's exact
    test p-value. Without --source the reviews are the held-out test split the bundles share
    (they must have been trained on the same data and split).
    """
    from critic.compare import compare_bundles, write_report

    comparison = compare_bundles(
        bundles, source, text_column=text_column, label_column=label_column,
        max_reviews=max_reviews, resamples=resamples, seed=seed, repeats=repeats,
        log=lambda line: typer.echo(line, err=True),
    )  # fmt: skip
    written = write_report(comparison, out)
    typer.echo(comparison.to_markdown())
    typer.echo(f"compare: wrote {', '.join(str(path) for path in written)}", err=True)


@app.command()
def predict(
    bundle: Annotated[Path, typer.Argument(help="A trained bundle folder.")],
    reviews: Annotated[
        list[str] | None,
        typer.Argument(help="Reviews to judge; without any, one per line on stdin."),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(help="Add each word's weight: how much, and which way, it pushed the answer."),
    ] = False,
) -> None:
    """Print one JSON object per review: label, probability of positive (raw and calibrated
    score), rating, tokens."""
    from critic.predictor import Predictor

    predictor = Predictor.load(bundle)
    texts = (
        list(reviews)
        if reviews
        else [line for line in sys.stdin.read().splitlines() if line.strip()]
    )
    if not texts:
        raise CriticError("no reviews given: pass them as arguments or one per line on stdin")
    for result in predictor.predict(texts, explain=explain):
        _echo_json(result)


@app.command()
def ensemble(
    members: Annotated[
        list[Path], typer.Argument(help="Two or more trained bundles, trained on the same data.")
    ],
    out: Annotated[Path, typer.Option(help="Folder to write the ensemble bundle to.")] = ...,  # type: ignore[assignment]
) -> None:
    """Combine trained bundles into one: their calibrated log-odds, weighted.

    The weights (non-negative) and a bias are fitted on the members' shared validation split;
    the ensemble is then calibrated and evaluated on the test split like a trained model. The
    bundle holds a copy of every member and is served like any other.
    """
    from critic.ensemble import build_ensemble

    metrics = build_ensemble(members, out, log=typer.echo)
    typer.echo(f"bundle: {out} (test accuracy {metrics['test_accuracy']:.4f})")


@app.command()
def serve(
    bundle: Annotated[
        Path | None, typer.Argument(help="A bundle to serve as the single variant AllTraffic.")
    ] = None,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=BUNDLE(:WEIGHT), repeatable: production variants sharing traffic by weight."
        ),
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: 8080, as SageMaker).")] = None,
    endpoint_name: Annotated[
        str | None,
        typer.Option(help="Name answered on /endpoints/NAME/invocations (default: critic)."),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(help="Token for POST /admin/weights; without it weights are fixed."),
    ] = None,
    max_reviews: Annotated[
        int | None, typer.Option(help="Most reviews per request (default: 1000).")
    ] = None,
    max_batch: Annotated[
        int | None, typer.Option(help="Most reviews per forward pass (default: 64).")
    ] = None,
    batch_wait_ms: Annotated[
        float | None,
        typer.Option(help="How long a request waits to share a forward pass (default: 5)."),
    ] = None,
    feedback_db: Annotated[
        str | None,
        typer.Option(
            help="SQLite file for the page's feedback (default: feedback.sqlite beside the "
            "first bundle; 'off' turns feedback off)."
        ),
    ] = None,
) -> None:
    """Serve bundles on SageMaker's hosting contract: GET /ping, POST /invocations, port 8080.

    The same server answers the web page at / and the A/B view at /ab.

    Settings may also come from the environment: CRITIC_PORT, CRITIC_ADMIN_TOKEN, ... (and
    SAGEMAKER_BIND_TO_PORT).
    """
    from critic.artifact import verify_bundle
    from critic.endpoint import feedback_path
    from critic.endpoint import serve as serve_endpoint
    from critic.serving.feedback import FeedbackStore
    from critic.serving.settings import ServerSettings
    from critic.serving.variants import DEFAULT_VARIANT, VariantSpec

    specs = [VariantSpec.parse(text) for text in variant or []]
    if bundle is not None:
        specs.insert(0, VariantSpec(DEFAULT_VARIANT, bundle, 1.0))
    if not specs:
        raise CriticError("nothing to serve: give a bundle, or --variant NAME=BUNDLE[:WEIGHT]")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise CriticError(f"variant names must differ: {', '.join(names)}")
    for spec in specs:
        verify_bundle(spec.bundle)  # a bad bundle is one line here, not a traceback at start-up
    settings = ServerSettings.from_env(
        host=host, port=port, endpoint_name=endpoint_name, admin_token=admin_token,
        max_reviews=max_reviews, max_batch=max_batch, batch_wait_ms=batch_wait_ms,
        feedback_db=feedback_db,
    )  # fmt: skip
    feedback = feedback_path(specs, settings)
    if feedback is not None:
        FeedbackStore(feedback)  # an unwritable or corrupt file is one line here, not at start-up
    for spec in specs:
        typer.echo(f"serve: variant {spec.name} = {spec.bundle} (weight {spec.weight:g})")
    typer.echo(f"serve: feedback in {feedback if feedback is not None else '(off)'}")
    typer.echo(
        f"serve: the page http://{settings.host}:{settings.port}/ and the A/B view /ab; "
        "POST /invocations, GET /ping, GET /metrics"
    )
    serve_endpoint(specs, settings)


@app.command()
def package(
    bundle: Annotated[Path, typer.Argument(help="A trained bundle folder.")],
    out: Annotated[Path, typer.Option(help="The model.tar.gz to write.")] = Path("model.tar.gz"),
) -> None:
    """Write a SageMaker model artifact: the bundle, code/inference.py and code/requirements.txt.

    The PyTorch serving container loads it as it is; critic's own source travels in code/.
    """
    from critic.artifact import package_bundle

    written = package_bundle(bundle, out)
    typer.echo(f"package: {written} ({written.stat().st_size / 1e6:.1f} MB)")


@app.command()
def deploy(
    artifact: Annotated[
        Path | None,
        typer.Argument(
            help="A model.tar.gz (or a bundle folder, packaged on the way) for one variant, AllTraffic."
        ),
    ] = None,
    endpoint: Annotated[str, typer.Option(help="Endpoint name.")] = ...,  # type: ignore[assignment]
    role: Annotated[str, typer.Option(help="IAM execution role ARN for the models.")] = ...,  # type: ignore[assignment]
    bucket: Annotated[str, typer.Option(help="S3 bucket to upload the artifacts to.")] = ...,  # type: ignore[assignment]
    variant: Annotated[
        list[str] | None,
        typer.Option(help="NAME=ARTIFACT(:WEIGHT), repeatable: production variants."),
    ] = None,
    instance_type: Annotated[
        str, typer.Option(help="Instance type of every variant.")
    ] = "ml.m5.large",
    instance_count: Annotated[int, typer.Option(help="Instances per variant.")] = 1,
    image: Annotated[
        str | None, typer.Option(help="Serving image URI (default: SageMaker's PyTorch image).")
    ] = None,
    region: RegionOption = None,
    wait: Annotated[bool, typer.Option(help="Wait until the endpoint is InService.")] = True,
) -> None:
    """Deploy to Amazon SageMaker: upload, create the models, an endpoint config with production
    variants and weights, and the endpoint. Delete it with critic delete-endpoint when done:
    a running endpoint is billed by the hour."""
    import tempfile

    from critic.artifact import package_bundle
    from critic.sagemaker import VariantSpec as AwsVariant
    from critic.sagemaker import deploy as deploy_endpoint
    from critic.serving.variants import DEFAULT_VARIANT, VariantSpec

    specs = [VariantSpec.parse(text) for text in variant or []]
    if artifact is not None:
        specs.insert(0, VariantSpec(DEFAULT_VARIANT, artifact, 1.0))
    if not specs:
        raise CriticError(
            "nothing to deploy: give a model.tar.gz, or --variant NAME=ARTIFACT[:WEIGHT]"
        )
    with tempfile.TemporaryDirectory(prefix="critic-deploy-") as scratch:
        variants = []
        for spec in specs:
            path = spec.bundle
            if path.is_dir():
                path = package_bundle(path, Path(scratch) / f"{spec.name}.tar.gz")
            variants.append(AwsVariant(spec.name, path, spec.weight))
        deployment = deploy_endpoint(
            variants, endpoint, role, bucket, instance_type=instance_type, instance_count=instance_count,
            image_uri=image, region=region, wait=wait, log=typer.echo,
        )  # fmt: skip
    _echo_json({"endpoint": deployment.endpoint_name, "status": deployment.status})


@app.command()
def invoke(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    reviews: Annotated[
        list[str] | None, typer.Argument(help="Reviews; without any, one per line on stdin.")
    ] = None,
    variant: Annotated[str | None, typer.Option(help="Send to this production variant.")] = None,
    region: RegionOption = None,
) -> None:
    """Call a SageMaker endpoint (boto3's invoke_endpoint) and print its answer as JSON.

    AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:8080 sends the call to critic serve.
    """
    from critic.sagemaker import invoke as invoke_endpoint

    texts = (
        list(reviews)
        if reviews
        else [line for line in sys.stdin.read().splitlines() if line.strip()]
    )
    if not texts:
        raise CriticError("no reviews given: pass them as arguments or one per line on stdin")
    result = invoke_endpoint(
        endpoint, texts if len(texts) > 1 else texts[0], target_variant=variant, region=region
    )
    answer = result.answer if isinstance(result.answer, dict) else {"answer": result.answer}
    _echo_json({**answer, "variant": result.variant})


@app.command("update-weights")
def update_weights(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    weights: Annotated[list[str], typer.Argument(help="VARIANT=WEIGHT ...")],
    region: RegionOption = None,
    wait: Annotated[
        bool, typer.Option(help="Wait until the endpoint has applied the weights.")
    ] = True,
) -> None:
    """Shift traffic between a SageMaker endpoint's variants without redeploying."""
    from critic.sagemaker import update_weights as update_endpoint_weights

    parsed = {}
    for item in weights:
        name, separator, value = item.partition("=")
        try:
            parsed[name] = float(value)
        except ValueError:
            separator = ""
        if not separator or not name:
            raise CriticError(f"{item!r}: expected VARIANT=WEIGHT, e.g. champion=0.5")
    _echo_json(
        {
            "endpoint": endpoint,
            "weights": update_endpoint_weights(endpoint, parsed, region, wait=wait, log=typer.echo),
        }
    )


@app.command("delete-endpoint")
def delete_endpoint(
    endpoint: Annotated[str, typer.Argument(help="Endpoint name.")],
    region: RegionOption = None,
) -> None:
    """Delete a SageMaker endpoint, its endpoint config and its models (the S3 artifacts stay)."""
    from critic.sagemaker import delete_endpoint as delete

    deleted = delete(endpoint, region, log=typer.echo)
    _echo_json(
        {
            "deleted_endpoint": deleted.endpoint_name,
            "endpoint_config": deleted.endpoint_config_name,
            "models": deleted.models,
        }
    )


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


if __name__ == "__main__":
    main()
