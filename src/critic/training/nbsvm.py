"""The n-gram logistic model (nbsvm): fitted by scikit-learn in one go -- no epochs, nothing
to resume -- on the same train / validation / test split as the neural models, then calibrated
the same way."""

from __future__ import annotations

import platform
import time

from critic.config import RunConfig
from critic.data.prepare import load_splits
from critic.data.text import tokenize_many
from critic.errors import CriticError, DataError
from critic.evaluation.calibration import calibrate
from critic.evaluation.evaluate import split_metrics
from critic.models import build_model
from critic.training.checkpoints import (
    remove_checkpoint,
)
from critic.training.run import RunOptions, TrainingResult


def train_nbsvm(config: RunConfig, run: RunOptions) -> TrainingResult:
    """Fit the n-gram model on the training split, choosing C on the validation split.

    It reads the reviews and tokenises them itself (about 5 s for the embedded reviews): the
    prepared data's word ids would lose the n-grams.
    """
    if run.resume:
        raise CriticError(f"{config.model.name} trains in one go: there is nothing to resume")
    if config.train.pretrain_epochs:
        raise CriticError(
            f"--pretrain-epochs: {config.model.name} is fitted in one go: it has no language "
            "model to pre-train"
        )
    if config.train.crop_share:
        raise CriticError(
            f"--crop-share: {config.model.name} is fitted in one go on whole reviews: it has no "
            "epochs to read crops in"
        )
    remove_checkpoint(run.out)
    log = run.log
    started = time.perf_counter()
    raw = load_splits(config.data)
    cut = config.data.max_length
    tokenized = {
        name: [tokens[:cut] for tokens in tokenize_many(reviews.texts)]
        for name, reviews in raw.items()
    }
    prepare_seconds = time.perf_counter() - started
    log(
        f"data: {', '.join(f'{len(r):,} {name}' for name, r in raw.items())} reviews, "
        f"read and tokenised in {prepare_seconds:.1f} s"
    )
    fit_started = time.perf_counter()
    model = build_model(config.model)
    tried = model.fit(
        tokenized["train"],
        raw["train"].labels,
        tokenized["validation"],
        raw["validation"].labels,
        log=log,
    )
    train_seconds = time.perf_counter() - fit_started
    if len(model) < 3:
        raise DataError(
            f"nbsvm: only {len(model)} n-grams occur in at least {config.model.min_df} training "
            "reviews; give more reviews or a lower --min-df"
        )
    config = config.replace(model=model.config.replace(vocab_size=len(model)))
    val_logits = model.decision_function(tokenized["validation"])
    test_logits = model.decision_function(tokenized["test"])
    val, test = raw["validation"], raw["test"]
    chosen = min(tried, key=lambda t: t.val_loss)
    metrics = {
        "model": config.model.name,
        "parameters": len(model) + 1,
        "ngrams": len(model),
        **split_metrics("val", val.labels, val_logits),
        **split_metrics("test", test.labels, test_logits),
        "test_reviews": len(test),
        "train_reviews": len(raw["train"]),
        "epochs": None,
        "best_epoch": None,
        "stop_reason": f"fitted; chose 1-{chosen.ngram_max}-grams, C={chosen.c:g}",
        "selection": [vars(t) for t in tried],
        "train_seconds": round(train_seconds, 2),
        "train_reviews_per_second": round(len(raw["train"]) / train_seconds, 1),
        "prepare_seconds": round(prepare_seconds, 2),
        "device": "cpu",
        "threads": 1,
        "python": platform.python_version(),
    }
    calibration, calibrated = calibrate(
        (val.labels, val_logits, val.ratings), (test.labels, test_logits, test.ratings), log
    )
    metrics.update(calibrated)
    log(
        f"done: nbsvm, val accuracy {metrics['val_accuracy']:.4f}, test accuracy "
        f"{metrics['test_accuracy']:.4f}, {train_seconds:.0f} s fitting"
    )
    return TrainingResult(config, None, model, metrics, [], calibration)
