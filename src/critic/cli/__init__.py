"""The ``critic`` command: thin -- parse, call the library, print.

Options that set a config field are not declared here: :mod:`critic.cli.options` builds them from
:mod:`critic.config` (training), :class:`~critic.serving.settings.ServerSettings` (serve) and
:class:`TrainingJobOptions` below (a SageMaker job), each field with its type, default and help.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from critic.apps.batch import TransformSettings
from critic.apps.sagemaker_web_settings import ProxySettings
from critic.cli.options import by_section, hide, options_of, pick, run_options, with_options
from critic.config import ModelConfig, setting
from critic.data.embeddings import Word2VecSettings
from critic.errors import CriticError
from critic.monitor.thresholds import DriftThresholds
from critic.serving.settings import ServerSettings

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
sagemaker_app = typer.Typer(
    help="Amazon SageMaker: train as a job, deploy an endpoint, scale it, invoke it, shift its "
    "traffic, delete it.",
    no_args_is_help=True,
)
app.add_typer(sagemaker_app, name="sagemaker")

SAGEMAKER_TRAINING_VARIABLES = ("SM_MODEL_DIR", "SM_CHANNEL_TRAINING", "SM_HPS")
REGION_HELP = "AWS region (default: from the environment)."


@dataclass(frozen=True)
class TrainingJobOptions:
    """Where and how a SageMaker training job runs: never sent to it as hyper-parameters."""

    role: str | None = setting(None, "The job's IAM execution role ARN.")
    bucket: str | None = setting(None, "S3 bucket for code and output.")
    instance_type: str = setting("ml.m5.xlarge", "Training instance type.")
    instance_count: int = setting(
        1, "Instances to train on; more than one trains data-parallel (torchrun on each)."
    )
    job_name: str | None = setting(None, "Job name (default: critic-MODEL-TIME).")
    region: str | None = setting(None, REGION_HELP)
    wait: bool = setting(False, "Wait for the job to end.")


RUN_OPTIONS = run_options()
DATA_OPTIONS = [option for option in RUN_OPTIONS if option.section == "data"]
JOB_OPTIONS = options_of(TrainingJobOptions)
SERVER_OPTIONS = options_of(ServerSettings)
DRIFT_OPTIONS = options_of(DriftThresholds)
PROXY_OPTIONS = options_of(ProxySettings)

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
        help="Judge on every review of this source, not a split: rotten_tomatoes, or a path to "
        "an aclImdb folder or .tar.gz, a .csv or a .jsonl file."
    ),
]


def _echo_json(payload) -> None:
    typer.echo(json.dumps(payload, ensure_ascii=False))


def _reviews_or_stdin(reviews: list[str] | None) -> list[str]:
    """The reviews given as arguments, else one per line on stdin (blank lines skipped)."""
    texts = (
        list(reviews)
        if reviews
        else [line for line in sys.stdin.read().splitlines() if line.strip()]
    )
    if not texts:
        raise CriticError("no reviews given: pass them as arguments or one per line on stdin")
    return texts


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
@with_options(settings=RUN_OPTIONS, job=hide(JOB_OPTIONS))
def train(
    out: Annotated[Path | None, typer.Option(help="Folder to write the bundle to.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run from its last epoch.")
    ] = False,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where prepared data is cached (default ~/.cache/critic).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per epoch.")] = True,
    sagemaker: Annotated[
        bool,
        typer.Option("--sagemaker", hidden=True, help="Old spelling of critic sagemaker train."),
    ] = False,
    *,
    settings: dict,
    job: dict,
) -> None:
    """Train a model and write its bundle (config, vocabulary, weights, metrics, curves).

    --model nbsvm fits the n-gram logistic model (about a minute on the embedded reviews);
    the other models are neural and train for epochs. Every model is then calibrated on
    the validation split. An ensemble is made with critic ensemble.

    Settings left out come from the model's recipe (see critic models), then critic's defaults.

    Inside a SageMaker training job (SM_MODEL_DIR, SM_CHANNEL_TRAINING and SM_HPS set) the
    hyper-parameters come from SM_HPS, data paths are read from the training channel and the
    bundle is written to SM_MODEL_DIR; critic sagemaker train submits such a job.
    """
    from critic.inference.bundle import save_training_result
    from critic.training.distributed import is_main_process
    from critic.training.train import train as run_training

    if sagemaker:
        _submit_training_job(settings, job, "--sagemaker")
        return
    in_job = _sagemaker_settings()
    if in_job is not None:
        # Any option of critic train may be a hyper-parameter; those of the job are ignored.
        unknown = sorted(set(in_job) - set(inspect.signature(train).parameters))
        if unknown:
            raise CriticError(f"unknown hyper-parameter(s) in SM_HPS: {', '.join(unknown)}")
        settings.update({name: value for name, value in in_job.items() if name in settings})
        out = Path(in_job["out"])
        typer.echo(f"sagemaker: training job, writing the model to {out}")
    if out is None:
        raise CriticError("--out is required: the folder to write the bundle to")
    config = _run_config(settings)
    try:
        result = run_training(
            config, out, resume=resume, cache_dir=cache_dir, progress=progress, log=typer.echo
        )
    except KeyboardInterrupt:
        typer.echo(
            f"\ninterrupted: the last completed epoch is saved; continue with "
            f"critic train --out {out} --resume",
            err=True,
        )
        raise typer.Exit(130) from None
    if not is_main_process():
        return  # under torchrun, rank 0 alone writes the bundle (after every rank is done)
    save_training_result(out, result)
    typer.echo(f"bundle: {out} (test accuracy {result.metrics['test_accuracy']:.4f})")


def _run_config(settings: dict):
    """The run's settings: those given (typed, SM_HPS strings included), over the model's
    recipe, over the defaults."""
    from critic.models import run_config

    sections = by_section(RUN_OPTIONS, settings)
    model = sections.setdefault("model", {}).pop("name", ModelConfig.name)
    return run_config(str(model), **sections)


@sagemaker_app.command("train")
@with_options(settings=RUN_OPTIONS, job=JOB_OPTIONS)
def sagemaker_train(*, settings: dict, job: dict) -> None:
    """Submit a training as a SageMaker training job: the settings given become its
    hyper-parameters, and --data s3://... its training channel. The job runs critic train."""
    _submit_training_job(settings, job, "critic sagemaker train")


def _submit_training_job(settings: dict, job: dict, command: str) -> None:
    """The settings given (the others keep the job's recipe and defaults) become the job's
    hyper-parameters; ``--data s3://...`` becomes its training channel."""
    import time

    from critic.sagemaker import submit_training_job

    where = TrainingJobOptions(**{name: value for name, value in job.items() if value is not None})
    for required in ("role", "bucket"):
        if not getattr(where, required):
            raise CriticError(f"{command} needs --{required}")
    # The job's machine picks its own device; data travels as the channel or by name.
    hyperparameters = {
        name: value
        for name, value in settings.items()
        if value is not None and name not in ("data", "device")
    }
    data = settings["data"]
    data_s3_uri = None
    if data and data.startswith("s3://"):
        data_s3_uri = data
    elif data:
        hyperparameters["data"] = data
    model = settings["model"] or ModelConfig.name
    name = where.job_name or f"critic-{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    submitted = submit_training_job(
        name, where.role, where.bucket, hyperparameters, instance_type=where.instance_type,
        data_s3_uri=data_s3_uri, region=where.region, wait=where.wait, log=typer.echo,
        instance_count=where.instance_count,
    )  # fmt: skip
    _echo_json(
        {"training_job": submitted.name, "status": submitted.status, "output": submitted.output_uri}
    )


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

    settings = Word2VecSettings(**by_section(WORD2VEC_OPTIONS, word2vec).get("", {}))
    config = DataConfig.from_dict(
        by_section(EMBEDDINGS_DATA_OPTIONS, data_settings).get("data", {})
    )
    reviews = load_splits(config)["train"]
    vectors = train_word2vec(tokenize_many(reviews.texts), settings, log=typer.echo)
    save_word2vec_text(vectors, out)
    typer.echo(f"embeddings: {out} ({len(vectors):,} words x {vectors.dimension})")


# The bundle's own data and columns unless told: no default to show.
EVALUATE_DATA_OPTIONS = pick(
    DATA_OPTIONS, "data", "text_column", "label_column", "max_reviews", show_default=False
)


@app.command()
@with_options(data_settings=EVALUATE_DATA_OPTIONS)
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
) -> None:
    """Print accuracy, precision, recall, F1, ROC-AUC, log loss, the confusion matrix, and
    calibration (ECE of the raw probability and of the calibrated score) as JSON; with star
    ratings in the data, the rating's mean absolute error and Spearman correlation too.

    Without --data, the bundle's own data and split are used, so --split test is the held-out
    test set the model never saw. --source rotten_tomatoes judges the model on a second domain:
    every review of that source.
    """
    from critic.evaluation.evaluate import evaluate_predictor, evaluation_data
    from critic.inference.predictor import Predictor

    predictor = Predictor.load(bundle)
    data, split = evaluation_data(
        predictor.bundle.config.data, split, data_settings["data"], source,
        data_settings["text_column"], data_settings["label_column"],
    )  # fmt: skip
    result = evaluate_predictor(predictor, data, split, data_settings["max_reviews"], plots)
    _echo_json({"bundle": str(bundle), **result})


COMPARE_SAMPLE_OPTIONS = pick(DATA_OPTIONS, "text_column", "label_column", "max_reviews")


@app.command()
@with_options(sample=COMPARE_SAMPLE_OPTIONS)
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
) -> None:
    """Offline A/B: judge the bundles on the same reviews and print a Markdown report.

    Per model: accuracy with a 95% paired bootstrap interval, latency per review and reviews/s.
    Per pair: the accuracy difference with its interval, the agreement rate and McNemar's exact
    test p-value. Without --source the reviews are the held-out test split the bundles share
    (they must have been trained on the same data and split). Without --out nothing is written.
    """
    from critic.evaluation.compare import compare_bundles, write_report
    from critic.inference.predictor import Predictor

    given = {name: value for name, value in sample.items() if value is not None}
    comparison = compare_bundles(
        bundles, source, load=Predictor.load, **given, resamples=resamples, seed=seed,
        repeats=repeats,
        log=lambda line: typer.echo(line, err=True),
    )  # fmt: skip
    written = write_report(comparison, out) if out is not None else []
    typer.echo(comparison.to_markdown())
    if written:
        typer.echo(f"compare: wrote {', '.join(str(path) for path in written)}", err=True)


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

    chosen = TransformSettings.create(**settings)
    results = transform_files(
        bundle, inputs, output, chosen, show_progress=progress,
        log=lambda line: typer.echo(line, err=True),
    )  # fmt: skip
    for result in results:
        _echo_json(
            {"input": result.input, "output": result.output, "records": result.records,
             "errors": result.errors}
        )  # fmt: skip


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
    from critic.inference.ensemble import build_ensemble

    metrics = build_ensemble(members, out, log=typer.echo)
    typer.echo(f"bundle: {out} (test accuracy {metrics['test_accuracy']:.4f})")


@app.command()
@with_options(server=SERVER_OPTIONS)
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
    shadow: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=BUNDLE(:FRACTION), repeatable: a shadow variant gets a copy of that "
            "fraction (default 1) of the live requests after they are answered; its answers are "
            "compared with the live ones on the A/B view, never returned."
        ),
    ] = None,
    *,
    server: dict,
) -> None:
    """Serve bundles on SageMaker's hosting contract: GET /ping, POST /invocations, port 8080.

    The same server answers the web page at / and the A/B view at /ab.

    Settings may also come from the environment: CRITIC_PORT, CRITIC_ADMIN_TOKEN, ... (and
    SAGEMAKER_BIND_TO_PORT).
    """
    from critic.apps.endpoint import feedback_path
    from critic.apps.endpoint import serve as serve_endpoint
    from critic.inference.bundle import verify_bundle
    from critic.serving.ab.feedback import FeedbackStore
    from critic.serving.sidecar.shadow import shadow_specs
    from critic.serving.variants import variant_specs

    specs = variant_specs(bundle, variant)
    if not specs:
        raise CriticError("nothing to serve: give a bundle, or --variant NAME=BUNDLE[:WEIGHT]")
    shadows = shadow_specs(shadow, [spec.name for spec in specs])
    for spec in [*specs, *shadows]:
        verify_bundle(spec.bundle)  # a bad bundle is one line here, not a traceback at start-up
    settings = ServerSettings.from_env(**server)
    feedback = feedback_path(specs, settings)
    if feedback is not None:
        FeedbackStore(feedback)  # an unwritable or corrupt file is one line here, not at start-up
    for spec in specs:
        typer.echo(f"serve: variant {spec.name} = {spec.bundle} (weight {spec.weight:g})")
    for spec in shadows:
        typer.echo(f"serve: shadow {spec.name} = {spec.bundle} ({spec.fraction:.0%} of requests)")
    if settings.capture_dir:
        typer.echo(
            f"serve: capturing {settings.capture_percent:g}% of requests to {settings.capture_dir}"
        )
    typer.echo(f"serve: feedback in {feedback if feedback is not None else '(off)'}")
    typer.echo(
        f"serve: the page http://{settings.host}:{settings.port}/ and the A/B view /ab; "
        "POST /invocations, GET /ping, GET /metrics"
    )
    serve_endpoint(specs, settings, shadows)


@app.command()
@with_options(thresholds=DRIFT_OPTIONS)
def monitor(
    capture: Annotated[Path, typer.Argument(help="A capture folder (critic serve --capture-dir).")],
    baseline: Annotated[
        Path, typer.Option(help="The bundle whose training data is the baseline.")
    ] = ...,  # type: ignore[assignment]
    out: Annotated[
        Path | None, typer.Option(help="Also write drift.md, drift.json and drift.png here.")
    ] = None,
    baseline_reviews: Annotated[
        int, typer.Option(help="Most reviews of the bundle's validation split to compare with.")
    ] = 2000,
    *,
    thresholds: dict,
) -> None:
    """Drift: how captured live traffic differs from the bundle's own held-out data.

    Score distribution (PSI and a Kolmogorov-Smirnov test), share of words outside the
    vocabulary, review length and the share of positive answers, over the whole capture and
    hour by hour, printed as Markdown. Exits 1 when the whole capture drifted past a threshold,
    so a scheduler can run it.
    """
    from critic.monitor.drift import monitor as monitor_capture
    from critic.monitor.drift import write_report

    limits = by_section(DRIFT_OPTIONS, thresholds).get("", {})
    report = monitor_capture(
        capture, baseline, DriftThresholds(**limits), baseline_reviews,
        log=lambda line: typer.echo(line, err=True),
    )  # fmt: skip
    written = write_report(report, out) if out is not None else []
    typer.echo(report.to_markdown())
    if written:
        typer.echo(f"monitor: wrote {', '.join(str(path) for path in written)}", err=True)
    if report.drift:
        raise typer.Exit(1)


@app.command()
@with_options(settings=PROXY_OPTIONS)
def web(*, settings: dict) -> None:
    """Serve the page, the feedback and the A/B view in front of a SageMaker endpoint.

    Reviews are answered by the endpoint (boto3's invoke_endpoint); the variant that answered
    comes from SageMaker, feedback is kept here. The page of a local model comes with
    critic serve itself. AWS credentials and region come from the environment as for every
    AWS command; the role needs sagemaker:InvokeEndpoint (and DescribeEndpoint to show the
    variants' weights).
    """
    from critic.apps.sagemaker_web import serve_proxy
    from critic.sagemaker.aws import connect
    from critic.serving.ab.feedback import FeedbackStore

    given = {option.field: settings[option.name] for option in PROXY_OPTIONS}
    proxy = ProxySettings(**{name: value for name, value in given.items() if value is not None})
    connect(proxy.region)  # no region, or no boto3, is one line here
    feedback = proxy.feedback_path()
    if feedback is not None:
        FeedbackStore(feedback)  # an unwritable or corrupt file is one line here, not at start-up
    typer.echo(f"web: reviews answered by SageMaker endpoint {proxy.endpoint_name}")
    typer.echo(f"web: feedback in {feedback if feedback is not None else '(off)'}")
    typer.echo(f"web: the page http://{proxy.host}:{proxy.port}/ and the A/B view /ab")
    serve_proxy(proxy, log=typer.echo)


@app.command()
def package(
    bundle: Annotated[Path | None, typer.Argument(help="A trained bundle folder.")] = None,
    out: Annotated[Path, typer.Option(help="The model.tar.gz to write.")] = Path("model.tar.gz"),
    backend: Annotated[
        str,
        typer.Option(
            help="What runs the neural models in the container: torch (its own PyTorch), "
            "onnx (ONNX Runtime; checked here first) or auto (ONNX Runtime for lstm, gru and "
            "attention). onnx and auto add onnxruntime to code/requirements.txt."
        ),
    ] = "torch",
    lambda_zip: Annotated[
        Path | None,
        typer.Option(
            "--lambda",
            help="Also (or only) write the Lambda function for API Gateway in front of a "
            "SageMaker endpoint, as this .zip.",
        ),
    ] = None,
) -> None:
    """Write a SageMaker model artifact: the bundle, code/inference.py and code/requirements.txt.

    The PyTorch serving container loads it as it is; critic's own source travels in code/.
    With --lambda api.zip: the Lambda function that puts API Gateway in front of the endpoint
    (standard library and boto3 only; its endpoint comes from CRITIC_ENDPOINT_NAME).
    """
    if bundle is None and lambda_zip is None:
        raise CriticError("nothing to package: give a bundle, or --lambda api.zip")
    if lambda_zip is not None:
        from critic.sagemaker.lambda_package import deployment_hints, package_lambda

        written = package_lambda(lambda_zip)
        typer.echo(f"package: {written} ({written.stat().st_size / 1e3:.1f} kB)")
        for line in deployment_hints(written):
            typer.echo(line)
    if bundle is not None:
        from critic.inference.bundle import package_bundle

        if backend == "onnx":
            # Export and compare with PyTorch now: a model ONNX Runtime cannot answer for is
            # refused here, in one line, rather than by the endpoint after a deployment.
            from critic.inference.predictor import Predictor

            Predictor.load(bundle, backend="onnx")
        written = package_bundle(bundle, out, backend=backend)
        size = written.stat().st_size / 1e6
        typer.echo(f"package: {written} ({size:.1f} MB, backend {backend})")


@sagemaker_app.command()
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
    min_instances: Annotated[
        int | None, typer.Option(help="Autoscaling: fewest instances per variant (default 1).")
    ] = None,
    max_instances: Annotated[
        int | None, typer.Option(help="Autoscaling: most instances per variant.")
    ] = None,
    target_invocations: Annotated[
        float | None,
        typer.Option(
            help="Autoscaling: invocations per instance per minute to hold "
            "(SageMakerVariantInvocationsPerInstance; bench/serve_load.py suggests one)."
        ),
    ] = None,
) -> None:
    """Deploy to Amazon SageMaker: upload, create the models, an endpoint config with production
    variants and weights, and the endpoint. Delete it with critic sagemaker delete-endpoint when
    done: a running endpoint is billed by the hour.

    With --max-instances and --target-invocations every variant scales between
    --min-instances and --max-instances (Application Auto Scaling target tracking); change it
    later with critic sagemaker autoscale."""
    import tempfile

    from critic.inference.bundle import package_bundle
    from critic.sagemaker import deploy as deploy_endpoint
    from critic.serving.variants import VariantSpec, variant_specs

    limits = _scaling_limits(min_instances, max_instances, target_invocations)
    specs = variant_specs(artifact, variant)  # repeated names fail before anything is packaged
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
            variants.append(VariantSpec(spec.name, path, spec.weight))
        deployment = deploy_endpoint(
            variants, endpoint, role, bucket, instance_type=instance_type, instance_count=instance_count,
            image_uri=image, region=region, wait=wait, log=typer.echo, autoscaling=limits,
        )  # fmt: skip
    answer = {"endpoint": deployment.endpoint_name, "status": deployment.status}
    if deployment.autoscaling:
        answer["autoscaling"] = [entry.to_dict() for entry in deployment.autoscaling]
    _echo_json(answer)


def _scaling_limits(minimum: int | None, maximum: int | None, target: float | None):
    """The autoscaling asked for on the command line: None when none of it is."""
    from critic.sagemaker import ScalingLimits

    if minimum is None and maximum is None and target is None:
        return None
    if maximum is None or target is None:
        raise CriticError(
            "autoscaling needs --max-instances and --target-invocations (and optionally "
            "--min-instances, default 1)"
        )
    return ScalingLimits(1 if minimum is None else minimum, maximum, target)


@sagemaker_app.command()
def autoscale(
    endpoint: EndpointArgument,
    min_instances: Annotated[
        int | None, typer.Option("--min", help="Fewest instances per variant (default 1).")
    ] = None,
    max_instances: Annotated[
        int | None, typer.Option("--max", help="Most instances per variant.")
    ] = None,
    target: Annotated[
        float | None,
        typer.Option(help="Invocations per instance per minute to hold."),
    ] = None,
    off: Annotated[
        bool, typer.Option("--off", help="Remove the autoscaling; the instances stay as they are.")
    ] = False,
    region: RegionOption = None,
) -> None:
    """Set, show or remove the autoscaling of every variant of a SageMaker endpoint.

    With --max and --target: target tracking on SageMakerVariantInvocationsPerInstance between
    --min and --max instances. With neither: print the present settings. --off removes them.
    """
    from critic.sagemaker import describe_autoscaling, remove_autoscaling, set_autoscaling

    limits = _scaling_limits(min_instances, max_instances, target)
    if off and limits is not None:
        raise CriticError("--off removes the autoscaling: give it without --min, --max, --target")
    if off:
        removed = remove_autoscaling(endpoint, region, log=typer.echo)
        _echo_json({"endpoint": endpoint, "removed": removed})
        return
    if limits is None:
        scaling = describe_autoscaling(endpoint, region)
    else:
        scaling = set_autoscaling(endpoint, limits, region, log=typer.echo)
    _echo_json({"endpoint": endpoint, "autoscaling": [entry.to_dict() for entry in scaling]})


@sagemaker_app.command()
def invoke(
    endpoint: EndpointArgument,
    reviews: ReviewsArgument = None,
    variant: Annotated[str | None, typer.Option(help="Send to this production variant.")] = None,
    region: RegionOption = None,
) -> None:
    """Call a SageMaker endpoint (boto3's invoke_endpoint) and print its answer as JSON.

    AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME=http://127.0.0.1:8080 sends the call to critic serve.
    """
    from critic.sagemaker import invoke as invoke_endpoint

    texts = _reviews_or_stdin(reviews)
    result = invoke_endpoint(
        endpoint, texts if len(texts) > 1 else texts[0], target_variant=variant, region=region
    )
    answer = result.answer if isinstance(result.answer, dict) else {"answer": result.answer}
    _echo_json({**answer, "variant": result.variant})


@sagemaker_app.command("transform")
def sagemaker_transform(
    model: Annotated[
        str,
        typer.Argument(
            help="A model critic sagemaker deploy made (ENDPOINT-VARIANT), or an endpoint "
            "whose variant's model to use."
        ),
    ],
    input_uri: Annotated[
        str, typer.Option("--input", help="s3://BUCKET/PREFIX: every object under it is read.")
    ] = ...,  # type: ignore[assignment]
    output: Annotated[str, typer.Option(help="s3://BUCKET/PREFIX for the .out files.")] = ...,  # type: ignore[assignment]
    content_type: Annotated[
        str,
        typer.Option(
            help="application/jsonlines, text/csv (one quoted review a line, no header) or "
            "text/plain (one review a line, sent one a request)."
        ),
    ] = "application/jsonlines",
    join_input: Annotated[
        bool, typer.Option(help="Each JSON line comes back with its answer in SageMakerOutput.")
    ] = False,
    variant: Annotated[
        str | None, typer.Option(help="The endpoint's variant whose model to use.")
    ] = None,
    instance_type: Annotated[str, typer.Option(help="Instance type of the job.")] = "ml.m5.large",
    instance_count: Annotated[int, typer.Option(help="Instances of the job.")] = 1,
    job_name: Annotated[
        str | None, typer.Option(help="Job name (default: critic-transform-TIME).")
    ] = None,
    region: RegionOption = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job to end.")] = True,
) -> None:
    """critic transform as a SageMaker Batch Transform job: every line of every object under
    --input gets one answer line in OUTPUT/NAME.out, on a model critic sagemaker deploy made.
    The job is billed per instance while it runs and stops by itself."""
    from critic.sagemaker import run_transform_job

    job = run_transform_job(
        model, input_uri, output, content_type=content_type, join_input=join_input,
        variant=variant, instance_type=instance_type, instance_count=instance_count,
        job_name=job_name, region=region, wait=wait, log=typer.echo,
    )  # fmt: skip
    _echo_json(
        {"transform_job": job.name, "model": job.model_name, "status": job.status,
         "output": job.output_uri}
    )  # fmt: skip


@sagemaker_app.command("update-weights")
def update_weights(
    endpoint: EndpointArgument,
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


@sagemaker_app.command("delete-endpoint")
def delete_endpoint(
    endpoint: EndpointArgument,
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


# The AWS commands' old, top-level names: hidden, still working for one release.
for _name, _command in (
    ("deploy", deploy),
    ("invoke", invoke),
    ("update-weights", update_weights),
    ("delete-endpoint", delete_endpoint),
):
    app.command(_name, hidden=True)(_command)


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
