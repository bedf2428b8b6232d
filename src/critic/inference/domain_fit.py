"""Fitting a bundle's out-of-domain signal (:mod:`critic.inference.domain`) on its own data.

``critic train`` and ``critic ensemble`` end with it; ``critic domain BUNDLE`` fits it again,
or for a bundle from before there was one. It reads the bundle's own split (the settings in
its config.json): the class Gaussians of a neural model from up to :data:`TRAIN_SAMPLE`
training reviews, every feature's scale and the threshold from the validation reviews, which
the model never learned from -- as new movie reviews will be.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from critic.data.prepare import load_splits
from critic.data.split import stratified_sample
from critic.data.text import tokenize_many
from critic.errors import CriticError
from critic.inference.bundle import ENSEMBLE, attach_domain, load_bundle
from critic.inference.domain import (
    NBSVM_FEATURES,
    NEURAL_FEATURES,
    UP,
    DomainModel,
    fit_domain,
    fit_gaussians,
)
from critic.inference.scoring import make_scorer
from critic.models import NBSVM_KIND

TRAIN_SAMPLE = 10_000
"""The most training reviews the class Gaussians are fitted on: enough for a covariance of a
few hundred dimensions (shrunk), a few seconds of scoring."""


def fit_bundle_domain(
    path: Path, *, log: Callable[[str], None] = print, train_sample: int = TRAIN_SAMPLE
) -> DomainModel:
    """Fit the out-of-domain signal of the bundle at ``path`` and write it into the bundle."""
    path = Path(path)
    bundle = load_bundle(path)
    data = bundle.config.data
    splits = load_splits(data)
    validation = splits["validation"]
    val_tokens = tokenize_many(validation.texts)
    scorer = make_scorer(bundle)
    fitted: dict = {}
    if bundle.kind == ENSEMBLE:
        missing = [
            name
            for name, member in zip(bundle.model.names, bundle.model.members, strict=True)
            if member.domain is None
        ]
        if missing:
            raise CriticError(
                f"{path}: ensemble member(s) {', '.join(missing)} have no domain model; "
                "assemble the ensemble again with critic ensemble (it fits its members' first)"
            )
        logits, raw = scorer.domain_features(val_tokens)
        features = tuple((f"member {number}", UP) for number in range(1, raw.shape[1] + 1))
        domain = fit_domain(features, raw, fitted=fitted)
    elif bundle.kind == NBSVM_KIND:
        logits, raw = scorer.domain_features(val_tokens)
        domain = fit_domain(NBSVM_FEATURES, raw, fitted=fitted)
    else:
        train = splits["train"]
        if len(train) > train_sample:
            train = stratified_sample(train, train_sample, data.split_seed)
        _, pooled, _ = scorer.representations(tokenize_many(train.texts))
        means, precision = fit_gaussians(pooled, train.labels)
        fitted["train_reviews"] = len(train)
        # The validation features need the Gaussians' density: a model of unit scale first.
        scorer.domain = DomainModel.unscaled(NEURAL_FEATURES, means, precision)
        logits, raw = scorer.domain_features(val_tokens)
        domain = fit_domain(NEURAL_FEATURES, raw, means, precision, fitted=fitted)
    typical = domain.scores(raw) <= 1.0
    right = (logits >= 0) == (validation.labels == 1)
    domain.fitted["validation_accuracy_typical"] = float(right[typical].mean())
    if (~typical).any():
        domain.fitted["validation_accuracy_unusual"] = float(right[~typical].mean())
    attach_domain(path, domain)
    unusual = domain.fitted.get("validation_accuracy_unusual")
    log(
        f"domain: fitted on {len(validation):,} validation reviews"
        + (
            f" and {fitted['train_reviews']:,} training reviews"
            if "train_reviews" in fitted
            else ""
        )
        + f"; {typical.mean():.1%} of validation reviews typical (accuracy "
        f"{domain.fitted['validation_accuracy_typical']:.1%}"
        + (f", {unusual:.1%} on the rest)" if unusual is not None else ")")
    )
    return domain
