"""Ensembles: several trained bundles answering as one.

``critic ensemble runs/a runs/b --out runs/ensemble`` scores the members' shared validation
split, fits one non-negative weight per member and a bias so that

    logit = bias + sum(weight_i * calibrated log-odds of member i)

has the least log loss there (logistic-regression stacking with weights kept >= 0, so that no
member counts against its own judgement), calibrates the result like any trained model, and
writes a bundle holding a copy of every member. It is served like any other bundle. Unless
told otherwise it has a second such set of weights and bias for short reviews, fitted with the
first on the validation reviews and crops of their sentences, and mixed in by a review's
length (:class:`~critic.inference.bundle.ShortReviews`).

The members must have been trained on the same data and split -- otherwise one member's
validation or test reviews may be another's training reviews, and every figure would lie.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from critic.config import DataConfig, ModelConfig, RunConfig
from critic.data.crops import short_crops
from critic.data.prepare import load_splits
from critic.data.split import SPLIT_SETTINGS, split_identity
from critic.data.text import tokenize_many
from critic.errors import CriticError
from critic.evaluation.calibration import calibrate, sigmoid
from critic.evaluation.evaluate import split_metrics
from critic.inference.bundle import ENSEMBLE, ShortReviews, save_ensemble
from critic.inference.domain_fit import fit_bundle_domain
from critic.inference.predictor import Predictor
from critic.inference.scoring import ensemble_log_odds, token_counts, weighted_log_odds
from critic.models.losses import logit_log_loss
from critic.training.run import training_seconds


def shared_data(predictors: Sequence[Predictor], paths: Sequence[Path]) -> DataConfig:
    """The members' common data settings; a CriticError naming the first difference."""
    first = predictors[0].bundle.config.data
    expected = split_identity(first)
    for predictor, path in zip(predictors[1:], paths[1:], strict=True):
        identity = split_identity(predictor.bundle.config.data)
        for setting in SPLIT_SETTINGS:
            if identity[setting] != expected[setting]:
                raise CriticError(
                    f"the members were trained on different data: {setting} is "
                    f"{expected[setting]!r} in {paths[0]} but {identity[setting]!r} "
                    f"in {path}; an ensemble needs members trained on the same data and split"
                )
    return first.replace(max_length=max(p.max_length for p in predictors))


def _fit_stack(features: np.ndarray, biases: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Non-negative coefficients of ``features`` (reviews, k) and free ones of ``biases``
    (reviews, j) minimising the log loss of ``sigmoid(features @ a + biases @ b)``."""
    from scipy.optimize import minimize

    design = np.hstack([features, biases]).astype(np.float64)
    signs = np.where(np.asarray(labels) == 1, 1.0, -1.0)
    count, weighted = features.shape

    def loss_and_gradient(parameters: np.ndarray) -> tuple[float, np.ndarray]:
        combined = design @ parameters
        pull = -signs * sigmoid(-signs * combined) / count  # d loss / d logit, per review
        return logit_log_loss(labels, combined), design.T @ pull

    start = np.append(np.full(weighted, 1.0 / weighted), np.zeros(biases.shape[1]))
    bounds = [(0.0, None)] * weighted + [(None, None)] * biases.shape[1]
    found = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return found.x


def fit_weights(member_logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative weights and a bias minimising the log loss of
    ``sigmoid(bias + member_logits @ weights)``; ``member_logits`` is (reviews, members)."""
    logits = np.asarray(member_logits, dtype=np.float64)
    members = logits.shape[1]
    found = _fit_stack(logits, np.ones((len(logits), 1)), labels)
    return found[:members], float(found[members])


def fit_short_weights(
    member_logits: np.ndarray, lengths: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, float, ShortReviews]:
    """Both sets of an ensemble's weights at once (:class:`ShortReviews`): the log loss of
    ``(1 - g) * (bias + L @ weights) + g * (short bias + L @ short weights)``, ``g`` each
    review's shortness by its ``lengths`` in tokens, over reviews long and short (the
    validation split and crops of it). Returns the long set's weights and bias, and the short
    set."""
    logits = np.asarray(member_logits, dtype=np.float64)
    members = logits.shape[1]
    gate = ShortReviews([0.0] * members, 0.0)
    share = gate.share(lengths)[:, None]
    features = np.hstack([logits * (1.0 - share), logits * share])
    found = _fit_stack(features, np.hstack([1.0 - share, share]), labels)
    weights, short_weights = found[:members], found[members : 2 * members]
    bias, short_bias = float(found[2 * members]), float(found[2 * members + 1])
    short = ShortReviews([float(w) for w in short_weights], short_bias)
    return weights, bias, short


def build_ensemble(
    members: Sequence[Path],
    out: Path,
    *,
    short_reviews: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Fit an ensemble of the bundles ``members`` and write it to ``out``; return its metrics.

    With ``short_reviews`` it has a second set of weights for short reviews
    (:class:`ShortReviews`), fitted together with the first on the validation reviews and on
    two crops of a few sentences of each (:func:`critic.data.crops.short_crops`); crops of the
    test reviews measure it (``test_short_accuracy``).
    """
    members = [Path(member) for member in members]
    if len(members) < 2:
        raise CriticError("an ensemble needs at least two member bundles")
    predictors = [Predictor.load(member) for member in members]
    for index, (predictor, member) in enumerate(zip(predictors, members, strict=True)):
        if not predictor.has_domain:
            # The ensemble's own out-of-domain signal is made of its members': a member from
            # before there was one gets it now, in its own folder, before it is copied.
            log(f"ensemble: {member} has no domain model yet; fitting it")
            fit_bundle_domain(member, log=log)
            predictors[index] = Predictor.load(member)
    data = shared_data(predictors, members)
    started = time.perf_counter()
    splits = load_splits(data)
    val, test = splits["validation"], splits["test"]
    val_tokens, test_tokens = tokenize_many(val.texts), tokenize_many(test.texts)
    log(f"ensemble: scoring {len(val):,} validation and {len(test):,} test reviews")
    val_members = np.stack([member_logits(p, val_tokens) for p in predictors], axis=1)
    test_members = np.stack([member_logits(p, test_tokens) for p in predictors], axis=1)
    fitted = (
        _fit_with_short_reviews(predictors, val, test, val_members, val_tokens, log)
        if short_reviews
        else None
    )
    if fitted is None:
        weights, bias = fit_weights(val_members, val.labels)
        short, short_metrics = None, {}
    else:
        weights, bias, short, short_metrics = fitted
    val_logits = ensemble_log_odds(val_members, weights, bias, short, token_counts(val_tokens))
    test_logits = ensemble_log_odds(test_members, weights, bias, short, token_counts(test_tokens))
    names = [f"{index}-{p.name}" for index, p in enumerate(predictors)]
    described = []
    for index, (name, path, weight) in enumerate(zip(names, members, weights, strict=True)):
        described.append(
            {
                "name": name,
                "bundle": str(path),
                "weight": round(float(weight), 6),
                "val_accuracy": float(((val_members[:, index] >= 0) == val.labels).mean()),
                "test_accuracy": float(((test_members[:, index] >= 0) == test.labels).mean()),
            }
        )
        if short is not None:
            described[-1]["short_weight"] = round(float(short.weights[index]), 6)
        log(
            f"ensemble: {name} ({path}) weight {weight:.3f}"
            + (f" ({short.weights[index]:.3f} on short reviews)" if short is not None else "")
            + f", test accuracy {described[-1]['test_accuracy']:.4f}"
        )
    if short is not None:
        log(
            f"ensemble: on {short_metrics['test_short_reviews']:,} crops of test reviews, "
            f"{short_metrics['test_short_accuracy']:.4f} accurate with the short-review "
            f"weights, {short_metrics['test_short_accuracy_without']:.4f} without"
        )
    metrics = {
        "model": ENSEMBLE,
        "members": described,
        "bias": bias,
        "parameters": sum(p.bundle.metrics.get("parameters") or 0 for p in predictors),
        **split_metrics("val", val.labels, val_logits),
        **split_metrics("test", test.labels, test_logits),
        "test_reviews": len(test),
        "train_reviews": len(splits["train"]),
        "train_seconds": round(time.perf_counter() - started, 2),
        "member_train_seconds": round(
            sum(training_seconds(p.bundle.metrics) or 0 for p in predictors), 2
        ),
        **short_metrics,
    }
    calibration, calibrated = calibrate(
        (val.labels, val_logits, val.ratings), (test.labels, test_logits, test.ratings), log
    )
    metrics.update(calibrated)
    config = RunConfig(data=data, model=ModelConfig(name=ENSEMBLE))
    save_ensemble(
        out,
        config,
        members=list(zip(names, members, strict=True)),
        weights=[float(w) for w in weights],
        bias=bias,
        metrics=metrics,
        calibration=calibration,
        short=short,
    )
    fit_bundle_domain(out, log=log)
    log(
        f"ensemble: val accuracy {metrics['val_accuracy']:.4f}, test accuracy "
        f"{metrics['test_accuracy']:.4f}; bundle {out}"
    )
    return metrics


def member_logits(predictor: Predictor, tokenized: list[list[str]]) -> np.ndarray:
    """A member's calibrated log-odds: what the ensemble combines."""
    return predictor.calibration.calibrated_logits(predictor.scorer.logits(tokenized))


def _fit_with_short_reviews(
    predictors: Sequence[Predictor],
    val,
    test,
    val_members: np.ndarray,
    val_tokens: list[list[str]],
    log: Callable[[str], None],
) -> tuple[np.ndarray, float, ShortReviews, dict] | None:
    """Both sets of weights (:func:`fit_short_weights`), on the validation reviews and crops
    of them, and the short-review figures on crops of the test reviews; None (said in one
    line) when no review has a sentence to crop."""
    val_crops, test_crops = short_crops(val, seed=0), short_crops(test, seed=1)
    if not (len(val_crops) and len(test_crops)):
        log(
            "ensemble: no review has a sentence of 4 words or more to crop; one set of weights "
            "for every review"
        )
        return None
    log(
        f"ensemble: scoring {len(val_crops):,} and {len(test_crops):,} crops of a few "
        "sentences of the validation and test reviews, for the short-review weights"
    )
    val_crop_tokens, test_crop_tokens = (
        tokenize_many(val_crops.texts),
        tokenize_many(test_crops.texts),
    )
    val_crop_members, test_crop_members = (
        np.stack([member_logits(p, tokens) for p in predictors], axis=1)
        for tokens in (val_crop_tokens, test_crop_tokens)
    )
    weights, bias, short = fit_short_weights(
        np.vstack([val_members, val_crop_members]),
        token_counts([*val_tokens, *val_crop_tokens]),
        np.concatenate([val.labels, val_crops.labels]),
    )
    with_short = ensemble_log_odds(
        test_crop_members, weights, bias, short, token_counts(test_crop_tokens)
    )
    plain_weights, plain_bias = fit_weights(val_members, val.labels)
    without = weighted_log_odds(test_crop_members, plain_weights, plain_bias)
    metrics = {
        "test_short_reviews": len(test_crops),
        "test_short_accuracy": float(((with_short >= 0) == test_crops.labels).mean()),
        "test_short_accuracy_without": float(((without >= 0) == test_crops.labels).mean()),
    }
    return weights, bias, short, metrics
