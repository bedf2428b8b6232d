"""Offline A/B: several model bundles judged on the same reviews, with significance.

By default the reviews are the held-out test split that every bundle's config determines (the
bundles must agree on it: same data, same split settings); with an explicit source they are
every review of that source. Each bundle answers through the
:class:`~critic.inference.predictor.Predictor` the caller's ``load`` gives (the inference layer
sits above this one, so it is passed in, not imported), so any model kind that loads as a
bundle can be compared. The report holds:

* per model: accuracy with a 95% bootstrap interval, and the latency per review (ms) and
  reviews/s of ``Predictor.predict_proba`` over all the reviews, in the predictor's batches
  (tokenising included: what a caller waits for);
* per pair: the accuracy difference with its paired bootstrap interval, the agreement rate
  (how often both give the same label), and McNemar's exact test: under "both models are
  equally accurate" a review that only one of the two gets right is equally likely to favour
  either, so the count of reviews only A gets right is Binomial(discordant, 1/2).

The bootstrap is paired: every resample draws the same reviews for every model, so the
interval of a difference reflects how the models differ on the same reviews, not the
variation of the test set as a whole (which is much wider and would hide real differences).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from critic.config import DataConfig
from critic.data.prepare import load_splits
from critic.data.sources import Reviews, describe_source, load_all_reviews
from critic.data.split import SPLIT_SETTINGS, split_identity, stratified_sample
from critic.errors import CriticError
from critic.evaluation.evaluate import Judged
from critic.fileio import write_atomic, write_text_atomic

REPORT_FILES = ("report.md", "report.json", "accuracy.png")
WARM_UP_REVIEWS = 64


class CompareError(CriticError):
    """Bundles that cannot be compared as asked."""


@dataclass
class Scores:
    """One model's probabilities of positive for a set of reviews, and how long they took."""

    probabilities: np.ndarray
    seconds: float

    @property
    def ms_per_review(self) -> float:
        return 1000.0 * self.seconds / max(len(self.probabilities), 1)

    @property
    def reviews_per_second(self) -> float:
        return len(self.probabilities) / self.seconds if self.seconds > 0 else float("inf")


def score_reviews(predictor: Judged, texts: Sequence[str], repeats: int = 1) -> Scores:
    """``predictor.predict_proba`` over all ``texts``, timed after a one-batch warm-up (the first
    call pays one-off costs: memory allocation, thread start-up, kernel selection). With
    ``repeats`` > 1 the fastest pass counts: on a shared machine the others measure the
    neighbours as much as the model."""
    if repeats < 1:
        raise CompareError(f"repeats must be at least 1, got {repeats}")
    texts = list(texts)
    predictor.predict_proba(texts[:WARM_UP_REVIEWS])
    best = float("inf")
    probabilities = np.zeros(0)
    for _ in range(repeats):
        started = time.perf_counter()
        probabilities = np.asarray(predictor.predict_proba(texts), dtype=np.float64)
        best = min(best, time.perf_counter() - started)
    return Scores(probabilities, best)


@dataclass
class ModelResult:
    name: str
    bundle: str
    model: str
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    correct: int
    ms_per_review: float
    reviews_per_second: float


@dataclass
class PairResult:
    a: str
    b: str
    accuracy_difference: float
    """Accuracy of ``a`` minus accuracy of ``b``."""
    difference_low: float
    difference_high: float
    agreement: float
    only_a_correct: int
    only_b_correct: int
    mcnemar_p: float


@dataclass
class Comparison:
    reviews: dict
    settings: dict
    models: list[ModelResult] = field(default_factory=list)
    pairs: list[PairResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "reviews": self.reviews,
            "settings": self.settings,
            "models": [asdict(model) for model in self.models],
            "pairs": [asdict(pair) for pair in self.pairs],
        }

    def to_markdown(self) -> str:
        level = f"{self.settings['confidence']:.0%}"
        lines = [
            "# Offline comparison",
            "",
            f"{self.reviews['count']:,} reviews: {self.reviews['data']}, "
            f"{'the test split' if self.reviews['split'] == 'test' else 'every review'} "
            f"({self.reviews['positive_share']:.1%} positive).",
            "",
            f"| model | bundle | accuracy | {level} interval | ms / review | reviews/s |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for model in self.models:
            lines.append(
                f"| {model.name} | `{model.bundle}` ({model.model}) | {model.accuracy:.2%} | "
                f"{model.accuracy_low:.2%} – {model.accuracy_high:.2%} | "
                f"{model.ms_per_review:.3f} | {model.reviews_per_second:,.0f} |"
            )
        lines += [
            "",
            f"| A | B | A − B | {level} interval | agreement | only A right | only B right "
            "| McNemar p |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for pair in self.pairs:
            lines.append(
                f"| {pair.a} | {pair.b} | {100 * pair.accuracy_difference:+.2f} pt | "
                f"{100 * pair.difference_low:+.2f} – {100 * pair.difference_high:+.2f} pt | "
                f"{pair.agreement:.2%} | {pair.only_a_correct} | {pair.only_b_correct} | "
                f"{_format_p(pair.mcnemar_p)} |"
            )
        lines += [
            "",
            f"Intervals: percentile bootstrap, {self.settings['resamples']:,} paired resamples "
            f"of the reviews (seed {self.settings['seed']}). McNemar: exact two-sided binomial "
            "test on the reviews exactly one model gets right. Latency: "
            f"`Predictor.predict_proba` over all the reviews in batches of "
            f"{self.settings['batch_size']}, tokenising included, "
            f"{self.settings['threads']} torch thread(s), "
            f"the fastest of {self.settings['timing_repeats']} pass(es).",
            "",
        ]
        return "\n".join(lines)


def _format_p(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


# --- statistics ---------------------------------------------------------------------------


def mcnemar_exact_p(only_a_correct: int, only_b_correct: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts (1.0 when there are none)."""
    discordant = only_a_correct + only_b_correct
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(only_a_correct, discordant, 0.5).pvalue)


def paired_bootstrap_accuracies(
    correct: np.ndarray, resamples: int, seed: int, chunk_cells: int = 4_000_000
) -> np.ndarray:
    """Accuracy of every model on each of ``resamples`` resamples of the reviews, drawn with
    replacement and shared by all models: ``correct`` is (models, reviews) of 0/1, the result
    (resamples, models)."""
    correct = np.asarray(correct, dtype=bool)
    reviews = correct.shape[1]
    rng = np.random.default_rng(seed)
    per_chunk = max(1, chunk_cells // reviews)  # bounds memory: (models, per_chunk, reviews)
    accuracies = np.empty((resamples, correct.shape[0]), dtype=np.float64)
    for start in range(0, resamples, per_chunk):
        count = min(per_chunk, resamples - start)
        drawn = rng.integers(0, reviews, size=(count, reviews))
        accuracies[start : start + count] = correct[:, drawn].mean(axis=-1).T
    return accuracies


def compare_predictions(
    labels: np.ndarray,
    probabilities: dict[str, np.ndarray],
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[list[dict], list[PairResult]]:
    """Accuracy intervals per model and the paired statistics per pair (in the given order)."""
    if resamples < 100:
        raise CompareError(f"resamples must be at least 100, got {resamples}")
    if not 0.5 <= confidence < 1:
        raise CompareError(f"confidence must lie in [0.5, 1), got {confidence}")
    labels = np.asarray(labels).astype(int)
    if len(labels) == 0:
        raise CompareError("no reviews to compare the models on")
    names = list(probabilities)
    predicted = np.stack([np.asarray(probabilities[name]) >= 0.5 for name in names]).astype(int)
    if predicted.shape[1] != len(labels):
        raise CompareError("every model needs one probability per review")
    correct = predicted == labels  # (models, reviews)
    resampled = paired_bootstrap_accuracies(correct, resamples, seed)
    tail = 100 * (1 - confidence) / 2
    bounds = (tail, 100 - tail)

    models = []
    for index, name in enumerate(names):
        low, high = np.percentile(resampled[:, index], bounds)
        models.append(
            {
                "name": name,
                "accuracy": float(correct[index].mean()),
                "accuracy_low": float(low),
                "accuracy_high": float(high),
                "correct": int(correct[index].sum()),
            }
        )
    pairs = []
    for i, j in combinations(range(len(names)), 2):
        only_a = int((correct[i] & ~correct[j]).sum())
        only_b = int((correct[j] & ~correct[i]).sum())
        low, high = np.percentile(resampled[:, i] - resampled[:, j], bounds)
        pairs.append(
            PairResult(
                a=names[i],
                b=names[j],
                accuracy_difference=float(correct[i].mean() - correct[j].mean()),
                difference_low=float(low),
                difference_high=float(high),
                agreement=float((predicted[i] == predicted[j]).mean()),
                only_a_correct=only_a,
                only_b_correct=only_b,
                mcnemar_p=mcnemar_exact_p(only_a, only_b),
            )
        )
    return models, pairs


# --- which reviews ------------------------------------------------------------------------


def common_test_split(configs: dict[str, DataConfig]) -> Reviews:
    """The test split all the bundles share; a clear error when their data or split differ."""
    identities = {name: split_identity(config) for name, config in configs.items()}
    first = next(iter(identities.values()))
    differing = sorted(
        {k for identity in identities.values() for k, v in identity.items() if v != first[k]},
        key=SPLIT_SETTINGS.index,
    )
    if differing:
        described = "; ".join(
            f"{name}: " + ", ".join(f"{key} {identity[key]!r}" for key in differing)
            for name, identity in identities.items()
        )
        raise CompareError(
            f"the bundles were trained on different data or splits, so their test splits "
            f"differ ({described}); compare them on every review of a common source with "
            "--source (rotten_tomatoes, or a CSV, JSONL or aclImdb path)"
        )
    return load_splits(next(iter(configs.values())))["test"]


def display_names(bundles: Sequence[Path]) -> list[str]:
    """Short names for the report: the folder names, or the paths where those repeat."""
    names = [Path(bundle).name or str(bundle) for bundle in bundles]
    if len(set(names)) < len(names):
        names = [str(bundle) for bundle in bundles]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return unique


# --- the whole comparison -----------------------------------------------------------------


def compare_bundles(
    bundles: Sequence[Path],
    source: str | None = None,
    *,
    load: Callable[[Path], Judged],
    text_column: str = "text",
    label_column: str = "label",
    max_reviews: int | None = None,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
    repeats: int = 1,
    log: Callable[[str], None] = print,
) -> Comparison:
    """Judge every bundle on the same reviews: their common test split, or all of ``source``.
    ``load`` opens a bundle as a predictor (``Predictor.load``)."""
    bundles = [Path(bundle) for bundle in bundles]
    if len(bundles) < 2:
        raise CompareError("give at least two bundles to compare")
    if repeats < 1:
        raise CompareError(f"repeats must be at least 1, got {repeats}")
    if max_reviews is not None and max_reviews < 10:
        raise CompareError(f"max_reviews must be at least 10, got {max_reviews}")
    names = display_names(bundles)
    predictors = {name: load(bundle) for name, bundle in zip(names, bundles, strict=True)}
    if source is None:
        configs = {name: p.bundle.config.data for name, p in predictors.items()}
        reviews = common_test_split(configs)
        data, split = next(iter(configs.values())).source, "test"
    else:
        reviews = load_all_reviews(source, text_column, label_column)
        data, split = source, "all"
    if max_reviews is not None:
        reviews = stratified_sample(reviews, max_reviews, seed)
    log(f"compare: {len(reviews):,} reviews from {describe_source(data)} ({split})")

    scores = {}
    for name, predictor in predictors.items():
        scores[name] = score_reviews(predictor, reviews.texts, repeats)
        log(f"compare: {name} ({predictor.name}): {scores[name].reviews_per_second:,.0f} reviews/s")
    model_rows, pairs = compare_predictions(
        reviews.labels,
        {name: score.probabilities for name, score in scores.items()},
        resamples=resamples,
        confidence=confidence,
        seed=seed,
    )
    models = [
        ModelResult(
            **row,
            bundle=str(bundle),
            model=predictors[row["name"]].name,
            ms_per_review=scores[row["name"]].ms_per_review,
            reviews_per_second=scores[row["name"]].reviews_per_second,
        )
        for row, bundle in zip(model_rows, bundles, strict=True)
    ]
    batch_sizes = {getattr(p, "batch_size", None) for p in predictors.values()}
    return Comparison(
        reviews={
            "data": describe_source(data),
            "source": data,
            "split": split,
            "count": len(reviews),
            "positive_share": float(np.mean(reviews.labels)),
        },
        settings={
            "resamples": resamples,
            "confidence": confidence,
            "seed": seed,
            "batch_size": batch_sizes.pop() if len(batch_sizes) == 1 else sorted(batch_sizes),
            "threads": torch.get_num_threads(),
            "timing_repeats": repeats,
        },
        models=models,
        pairs=pairs,
    )


def write_report(comparison: Comparison, out: Path) -> list[Path]:
    """report.md, report.json and accuracy.png in ``out`` (created if needed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "report.md", comparison.to_markdown())
    write_text_atomic(out / "report.json", json.dumps(comparison.to_dict(), indent=2) + "\n")
    write_atomic(out / "accuracy.png", lambda path: plot_accuracies(comparison, path))
    return [out / name for name in REPORT_FILES]


def plot_accuracies(comparison: Comparison, path: Path) -> None:
    """Each model's accuracy as a point with its interval, best at the top."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import PercentFormatter

    models = sorted(comparison.models, key=lambda model: model.accuracy)
    accuracy = np.array([model.accuracy for model in models])
    errors = np.array(
        [accuracy - [m.accuracy_low for m in models], [m.accuracy_high for m in models] - accuracy]
    )
    figure, axes = plt.subplots(figsize=(6.5, 1.2 + 0.45 * len(models)))
    positions = np.arange(len(models))
    axes.errorbar(accuracy, positions, xerr=errors, fmt="o", capsize=4, color="tab:blue")
    for position, model in zip(positions, models, strict=True):
        axes.annotate(
            f"{model.accuracy:.2%}",
            (model.accuracy, position),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=8,
        )
    axes.set_yticks(positions, [model.name for model in models])
    axes.set_ylim(-0.7, len(models) - 0.3)
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel(f"accuracy, {comparison.settings['confidence']:.0%} paired bootstrap interval")
    axes.set_title(
        f"{comparison.reviews['count']:,} reviews: {comparison.reviews['data']}, "
        f"{'test split' if comparison.reviews['split'] == 'test' else 'every review'}",
        fontsize=9,
    )
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")
    plt.close(figure)
