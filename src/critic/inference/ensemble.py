"""Ensembles: several trained bundles answering as one.

``critic ensemble runs/a runs/b --out runs/ensemble`` scores the members' shared validation
split, fits one non-negative weight per member and a bias so that

    logit = bias + sum(weight_i * calibrated log-odds of member i)

has the least log loss there (logistic-regression stacking with weights kept >= 0, so that no
member counts against its own judgement), calibrates the result like any trained model, and
writes a bundle holding a copy of every member. It is served like any other bundle.

The members must have been trained on the same data and split -- otherwise one member's
validation or test reviews may be another's training reviews, and every figure would lie.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from critic.config import DataConfig, ModelConfig, RunConfig
from critic.data.prepare import load_splits
from critic.data.split import SPLIT_SETTINGS, split_identity
from critic.data.text import tokenize_many
from critic.errors import CriticError
from critic.evaluation.calibration import calibrate, sigmoid
from critic.evaluation.evaluate import split_metrics
from critic.inference.bundle import ENSEMBLE, save_ensemble
from critic.inference.domain_fit import fit_bundle_domain
from critic.inference.predictor import Predictor
from critic.inference.scoring import weighted_log_odds
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


def fit_weights(member_logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Non-negative weights and a bias minimising the log loss of
    ``sigmoid(bias + member_logits @ weights)``; ``member_logits`` is (reviews, members)."""
    from scipy.optimize import minimize

    logits = np.asarray(member_logits, dtype=np.float64)
    signs = np.where(np.asarray(labels) == 1, 1.0, -1.0)
    count, members = logits.shape

    def loss_and_gradient(parameters: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = parameters[:members], parameters[members]
        combined = weighted_log_odds(logits, weights, bias)
        pull = -signs * sigmoid(-signs * combined) / count  # d loss / d logit, per review
        return logit_log_loss(labels, combined), np.append(logits.T @ pull, pull.sum())

    start = np.append(np.full(members, 1.0 / members), 0.0)
    bounds = [(0.0, None)] * members + [(None, None)]
    found = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return found.x[:members], float(found.x[members])


def build_ensemble(
    members: Sequence[Path], out: Path, *, log: Callable[[str], None] = print
) -> dict:
    """Fit an ensemble of the bundles ``members`` and write it to ``out``; return its metrics."""
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
    weights, bias = fit_weights(val_members, val.labels)
    val_logits = weighted_log_odds(val_members, weights, bias)
    test_logits = weighted_log_odds(test_members, weights, bias)
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
        log(
            f"ensemble: {name} ({path}) weight {weight:.3f}, test accuracy "
            f"{described[-1]['test_accuracy']:.4f}"
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
