"""Drift statistics and the report: see :mod:`critic.monitor`."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from critic.data.text import tokenize
from critic.errors import CriticError
from critic.fileio import write_atomic, write_text_atomic
from critic.monitor.thresholds import DriftThresholds
from critic.serving.codec import decode_predictions
from critic.serving.sidecar.capture import capture_files, captured_reviews, decode_payload

if TYPE_CHECKING:  # the command line builds its options from DriftThresholds without torch
    from critic.inference.predictor import Predictor

REPORT_FILES = ("drift.md", "drift.json", "drift.png")
PSI_FLOOR = 1e-4  # an empty bin's share, so that the logarithm stays finite


class MonitorError(CriticError):
    """A capture or baseline that cannot be monitored as asked."""


@dataclass
class Traffic:
    """Reviews and their answers: the baseline, or one window of captured traffic.

    ``probabilities`` holds only the answers that carried one (a text/plain answer is a bare
    label); ``unknown``/``tokens`` are None when the review text was not captured;
    ``unusual`` counts the answers whose domain score called the review unlike the model's
    training reviews, of the ``judged_domain`` that carried a domain score."""

    probabilities: np.ndarray
    positive: int
    answers: int
    words: np.ndarray
    unknown: int | None = 0
    tokens: int | None = 0
    unusual: int = 0
    judged_domain: int = 0

    @property
    def positive_share(self) -> float | None:
        return self.positive / self.answers if self.answers else None

    @property
    def unusual_share(self) -> float | None:
        return self.unusual / self.judged_domain if self.judged_domain else None

    @property
    def unknown_share(self) -> float | None:
        if self.unknown is None or not self.tokens:
            return None
        return self.unknown / self.tokens


# --- statistics ------------------------------------------------------------------------------


PSI_BINS = 10


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``actual`` against ``expected``, over the quantile bins
    of ``expected``: sum((a - e) * ln(a / e)) over the bins' shares."""
    expected, actual = np.asarray(expected, float), np.asarray(actual, float)
    if not len(expected) or not len(actual):
        raise MonitorError("PSI needs values on both sides")
    # Bins (-inf, q1], (q1, q2], ..., (q9, inf): a value equal to an edge goes below it, so
    # that a constant baseline still has a bin of its own, apart from every other value.
    inner = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    shares = []
    for values in (expected, actual):
        counts = np.bincount(np.searchsorted(inner, values, side="left"), minlength=len(inner) + 1)
        shares.append(np.maximum(counts / len(values), PSI_FLOOR))
    e, a = shares
    return float(np.sum((a - e) * np.log(a / e)))


def psi_by_chance(expected_count: int, actual_count: int, alpha: float, bins: int = PSI_BINS):
    """The PSI that two samples of one distribution exceed with probability ``alpha``: PSI
    times 1 / (1/n + 1/m) is about chi-square with bins - 1 degrees of freedom (Yurdakul,
    2018). With 100 reviews against 200 it is 0.42 at alpha 0.001, so a fixed 0.2 would flag
    an hour of unchanged traffic now and then."""
    from scipy import stats

    return float(stats.chi2.ppf(1 - alpha, bins - 1) * (1 / expected_count + 1 / actual_count))


def vocabulary_of(predictor: Predictor) -> set[str]:
    """The words a bundle knows: its vocabulary, the n-gram model's single words, or every
    member's for an ensemble."""
    return _words(predictor.bundle)


def _words(bundle) -> set[str]:
    if bundle.vocab is not None:
        return set(bundle.vocab.words[2:])  # <pad> and <unk> are not words
    model = bundle.model
    if hasattr(model, "members"):
        return set().union(*(_words(member) for member in model.members))
    grams = getattr(model, "vocabulary", None) or []  # the n-gram model's, space-joined
    return {gram for gram in grams if " " not in gram}


def traffic_of(
    texts: Sequence[str] | None,
    words: Iterable[int],
    answers: Sequence[dict],
    vocabulary: set[str],
) -> Traffic:
    """The figures of some reviews (``texts`` None: their text was not captured)."""
    probabilities = [a["probability"] for a in answers if a.get("probability") is not None]
    domains = [a["domain"] for a in answers if isinstance(a.get("domain"), dict)]
    unknown = tokens = None
    if texts is not None:
        unknown = tokens = 0
        for text in texts:
            read = tokenize(text)
            tokens += len(read)
            unknown += sum(token not in vocabulary for token in read)
    return Traffic(
        probabilities=np.asarray(probabilities, dtype=np.float64),
        positive=sum(answer["label"] == "positive" for answer in answers),
        answers=len(answers),
        words=np.asarray(list(words), dtype=np.float64),
        unknown=unknown,
        tokens=tokens,
        unusual=sum(domain.get("typical") is False for domain in domains),
        judged_domain=len(domains),
    )


def fisher_p(live_count: int, live_total: int, baseline_count: int, baseline_total: int) -> float:
    """Fisher's exact test of two shares (``count`` of ``total``, live and baseline): how likely
    chance alone would set them this far apart."""
    from scipy import stats

    table = [
        [live_count, live_total - live_count],
        [baseline_count, baseline_total - baseline_count],
    ]
    return float(stats.fisher_exact(table).pvalue)


def compare_traffic(baseline: Traffic, live: Traffic, limits: DriftThresholds) -> dict:
    """Every figure of ``live`` against ``baseline``, and which of them count as drift: a
    difference past its threshold that the samples' sizes make unlikely by chance."""
    from scipy import stats

    result: dict = {"reviews": live.answers, "judged": live.answers >= limits.min_reviews}
    breaches = []
    if len(live.probabilities) and len(baseline.probabilities):
        score_psi = psi(baseline.probabilities, live.probabilities)
        chance = psi_by_chance(len(baseline.probabilities), len(live.probabilities), limits.alpha)
        ks = stats.ks_2samp(baseline.probabilities, live.probabilities)
        result["score"] = {
            "psi": score_psi,
            "psi_by_chance": chance,
            "ks_statistic": float(ks.statistic),
            "ks_p": float(ks.pvalue),
            "mean": float(live.probabilities.mean()),
            "baseline_mean": float(baseline.probabilities.mean()),
        }
        if score_psi > max(limits.psi, chance):
            breaches.append(f"score PSI {score_psi:.3f} > {max(limits.psi, chance):.3g}")
        if ks.pvalue < limits.alpha and ks.statistic > limits.ks_statistic:
            breaches.append(
                f"score KS distance {ks.statistic:.3f} > {limits.ks_statistic:g} "
                f"(p = {ks.pvalue:.2g})"
            )
    if len(live.words) and len(baseline.words):
        length_psi = psi(baseline.words, live.words)
        chance = psi_by_chance(len(baseline.words), len(live.words), limits.alpha)
        result["length"] = {
            "psi": length_psi,
            "psi_by_chance": chance,
            "median_words": float(np.median(live.words)),
            "baseline_median_words": float(np.median(baseline.words)),
        }
        if length_psi > max(limits.psi, chance):
            breaches.append(f"review length PSI {length_psi:.3f} > {max(limits.psi, chance):.3g}")
    if live.unknown_share is not None and baseline.unknown_share is not None:
        rise = live.unknown_share - baseline.unknown_share
        result["unknown_words"] = {
            "share": live.unknown_share,
            "baseline_share": baseline.unknown_share,
        }
        if rise > limits.unknown_words:
            breaches.append(
                f"unknown words {live.unknown_share:.1%} (baseline {baseline.unknown_share:.1%})"
            )
    if live.unusual_share is not None and baseline.unusual_share is not None:
        rise = live.unusual_share - baseline.unusual_share
        p_value = fisher_p(
            live.unusual, live.judged_domain, baseline.unusual, baseline.judged_domain
        )
        result["unusual"] = {
            "share": live.unusual_share,
            "baseline_share": baseline.unusual_share,
            "fisher_p": p_value,
        }
        if rise > limits.unusual_share and p_value < limits.alpha:
            breaches.append(
                f"unusual reviews {live.unusual_share:.1%} (baseline "
                f"{baseline.unusual_share:.1%}): unlike the movie reviews the model learned from"
            )
    if live.positive_share is not None and baseline.positive_share is not None:
        moved = live.positive_share - baseline.positive_share
        p_value = fisher_p(live.positive, live.answers, baseline.positive, baseline.answers)
        result["label"] = {
            "positive_share": live.positive_share,
            "baseline_positive_share": baseline.positive_share,
            "fisher_p": p_value,
        }
        if abs(moved) > limits.label_share and p_value < limits.alpha:
            breaches.append(
                f"positive share {live.positive_share:.1%} (baseline {baseline.positive_share:.1%})"
            )
    result["breaches"] = breaches if result["judged"] else []
    result["drift"] = bool(result["breaches"])
    return result


# --- the baseline and the capture ---------------------------------------------------------------


def baseline_traffic(
    predictor: Predictor, max_reviews: int = 2000, seed: int = 0, log: Callable = print
) -> tuple[Traffic, dict]:
    """The bundle's validation split (at most ``max_reviews``, stratified), scored by it."""
    from critic.data.prepare import load_splits
    from critic.data.split import stratified_sample

    data = predictor.bundle.config.data
    log(f"monitor: baseline from {data.source} (validation split, split seed {data.split_seed})")
    try:
        validation = load_splits(data)["validation"]
    except (OSError, CriticError) as error:
        raise MonitorError(f"the baseline's data ({data.source}) cannot be read: {error}") from None
    validation = stratified_sample(validation, max_reviews, seed)
    answers = predictor.predict(validation.texts)
    traffic = traffic_of(
        validation.texts,
        (len(text.split()) for text in validation.texts),
        answers,
        vocabulary_of(predictor),
    )
    about = {
        "bundle": str(predictor.bundle.path),
        "model": predictor.name,
        "data": data.source,
        "split": "validation",
        "reviews": len(validation),
    }
    return traffic, about


def captured_answers(record: dict) -> list[dict]:
    """The answers of one capture line, as dicts with a label (and, in JSON, probability and
    id)."""
    payload = record["captureData"]["endpointOutput"]
    decoded = decode_predictions(decode_payload(payload), payload["observedContentType"])
    if isinstance(decoded, dict):
        decoded = decoded.get("predictions", [])
    if isinstance(decoded, str):  # text/plain: "1" or "0" per review, no probability
        return [
            {"label": "positive" if line.strip() == "1" else "negative"}
            for line in decoded.splitlines()
            if line.strip()
        ]
    return [a for a in decoded if isinstance(a, dict) and "label" in a]


def read_capture(folder: Path, vocabulary: set[str]) -> tuple[dict[str, Traffic], list[str]]:
    """The captured traffic by hour (``2026-11-29T05``), and the lines that could not be read."""
    texts: dict[str, list[str] | None] = defaultdict(list)
    words: dict[str, list[int]] = defaultdict(list)
    answers: dict[str, list[dict]] = defaultdict(list)
    unreadable = []
    files = capture_files(folder)
    if not files:
        raise MonitorError(f"{folder} holds no capture files (*.jsonl)")
    for path in files:
        # Split on "\n" alone: JSON lines end there, and a raw U+2028 inside a string does not.
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                hour = record["eventMetadata"]["inferenceTime"][:13]
                reviews, counts = captured_reviews(record)
                given = captured_answers(record)
            except (ValueError, KeyError, TypeError, CriticError) as error:
                unreadable.append(f"{path}:{number}: {error}")
                continue
            if len(given) != len(counts):
                unreadable.append(f"{path}:{number}: {len(counts)} reviews, {len(given)} answers")
                continue
            if reviews is None or texts[hour] is None:
                texts[hour] = None  # one record without text: the hour has no word figures
            else:
                texts[hour].extend(reviews)
            words[hour] += counts
            answers[hour] += given
    windows = {
        hour: traffic_of(texts[hour], words[hour], answers[hour], vocabulary)
        for hour in sorted(answers)
    }
    return windows, unreadable


def combined(windows: Iterable[Traffic]) -> Traffic:
    """Several windows as one."""
    windows = list(windows)
    text_known = all(window.unknown is not None for window in windows)
    return Traffic(
        probabilities=np.concatenate([w.probabilities for w in windows] or [np.zeros(0)]),
        positive=sum(w.positive for w in windows),
        answers=sum(w.answers for w in windows),
        words=np.concatenate([w.words for w in windows] or [np.zeros(0)]),
        unknown=sum(w.unknown for w in windows) if text_known else None,
        tokens=sum(w.tokens for w in windows) if text_known else None,
        unusual=sum(w.unusual for w in windows),
        judged_domain=sum(w.judged_domain for w in windows),
    )


# --- the report ----------------------------------------------------------------------------------


@dataclass
class DriftReport:
    baseline: dict
    thresholds: dict
    overall: dict
    windows: dict[str, dict] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)
    capture: str = ""
    traffic: tuple | None = field(default=None, repr=False)
    """The baseline's and each window's :class:`Traffic`, for the plots; not in to_dict."""

    @property
    def drift(self) -> bool:
        return bool(self.overall["drift"])

    def to_dict(self) -> dict:
        data = {name: value for name, value in asdict(self).items() if name != "traffic"}
        return {**data, "drift": self.drift}

    def to_markdown(self) -> str:
        base = self.baseline
        verdict = (
            "**DRIFT**: " + "; ".join(self.overall["breaches"])
            if self.drift
            else (
                "no drift past the thresholds"
                if self.overall["judged"]
                else f"too few reviews to judge (fewer than {self.thresholds['min_reviews']})"
            )
        )
        lines = [
            "# Drift report",
            "",
            f"Capture `{self.capture}`: {self.overall['reviews']:,} reviews in "
            f"{len(self.windows)} hour(s). Baseline: `{base['bundle']}` ({base['model']}) on "
            f"{base['reviews']:,} reviews of its {base['split']} split ({base['data']}).",
            "",
            f"Verdict: {verdict}.",
            "",
            "| window | reviews | score PSI | KS D (p) | length PSI | unknown words | "
            "unusual reviews | positive | drift |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            f"| baseline | {base['reviews']:,} | — | — | — | "
            f"{figure(base['unknown_share'], '.1%')} | "
            f"{figure(base.get('unusual_share'), '.1%')} | "
            f"{figure(base['positive_share'], '.1%')} | |",
            _row("all", self.overall),
            *(_row(hour, figures) for hour, figures in self.windows.items()),
            "",
            f"Thresholds: PSI > {self.thresholds['psi']:g} and past what chance gives at the "
            f"samples' sizes (chi-square bound, alpha {self.thresholds['alpha']:g}); KS distance "
            f"> {self.thresholds['ks_statistic']:g} at p < {self.thresholds['alpha']:g}; unknown "
            f"words up by > {self.thresholds['unknown_words']:.0%} (absolute); unusual reviews "
            f"(a domain score above 1) up by > {self.thresholds['unusual_share']:.0%} at Fisher "
            f"p < {self.thresholds['alpha']:g}; positive share "
            f"moved by > {self.thresholds['label_share']:.0%} at Fisher p < "
            f"{self.thresholds['alpha']:g}; a window needs {self.thresholds['min_reviews']} "
            "reviews to be judged. PSI over the baseline's deciles.",
        ]
        return "\n".join(lines + unreadable_note(self.unreadable)) + "\n"


def figure(value: float | None, form: str) -> str:
    """A report's figure in ``form``, or a dash where there is none."""
    return "—" if value is None else format(value, form)


def unreadable_note(unreadable: list[str]) -> list[str]:
    """A report's closing lines on the capture lines it could not read (none: nothing)."""
    if not unreadable:
        return []
    return ["", f"{len(unreadable)} capture line(s) could not be read, e.g. `{unreadable[0]}`."]


def _row(name: str, figures: dict) -> str:
    score, length = figures.get("score", {}), figures.get("length", {})
    unknown, label = figures.get("unknown_words", {}), figures.get("label", {})
    unusual = figures.get("unusual", {})
    ks = "—" if not score else f"{score['ks_statistic']:.3f} ({score['ks_p']:.2g})"
    drift = "yes" if figures["drift"] else ("no" if figures["judged"] else "not judged")
    return (
        f"| {name} | {figures['reviews']:,} | {figure(score.get('psi'), '.3f')} | {ks} | "
        f"{figure(length.get('psi'), '.3f')} | {figure(unknown.get('share'), '.1%')} | "
        f"{figure(unusual.get('share'), '.1%')} | "
        f"{figure(label.get('positive_share'), '.1%')} | {drift} |"
    )


def monitor(
    capture: Path,
    baseline_bundle: Path,
    thresholds: DriftThresholds | None = None,
    baseline_reviews: int = 2000,
    log: Callable = print,
) -> DriftReport:
    """Compare a capture folder with a bundle's baseline, overall and hour by hour."""
    from critic.inference.predictor import Predictor

    thresholds = thresholds or DriftThresholds()
    predictor = Predictor.load(baseline_bundle)
    vocabulary = vocabulary_of(predictor)
    windows, unreadable = read_capture(Path(capture), vocabulary)
    if not windows:
        raise MonitorError(f"no capture line in {capture} could be read: {unreadable[0]}")
    baseline, about = baseline_traffic(predictor, baseline_reviews, log=log)
    baseline_figures = {
        "positive_share": baseline.positive_share,
        "unknown_share": baseline.unknown_share,
        "unusual_share": baseline.unusual_share,
        "median_words": float(np.median(baseline.words)),
    }
    report = DriftReport(
        baseline={**about, **baseline_figures},
        thresholds=asdict(thresholds),
        overall=compare_traffic(baseline, combined(windows.values()), thresholds),
        windows={
            hour: compare_traffic(baseline, window, thresholds) for hour, window in windows.items()
        },
        unreadable=unreadable,
        capture=str(capture),
        traffic=(baseline, windows),
    )
    return report


def write_report(report: DriftReport, out: Path) -> list[Path]:
    """drift.md, drift.json and drift.png in ``out`` (created if needed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "drift.md", report.to_markdown())
    write_text_atomic(out / "drift.json", json.dumps(report.to_dict(), indent=2) + "\n")
    write_atomic(out / "drift.png", lambda path: plot_drift(report, path))
    return [out / name for name in REPORT_FILES]


def plot_drift(report: DriftReport, path: Path) -> None:
    """Scores and lengths, baseline against live; score PSI and unknown words hour by hour."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    baseline, windows = report.traffic
    live = combined(windows.values())
    figure, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    for ax, values, title in (
        (axes[0, 0], (baseline.probabilities, live.probabilities), "score (probability positive)"),
        (axes[0, 1], (np.log10(1 + baseline.words), np.log10(1 + live.words)), "log10(1 + words)"),
    ):
        for series, label in zip(values, ("baseline", "live"), strict=True):
            if len(series):
                ax.hist(series, bins=20, density=True, alpha=0.55, label=label)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    hours = list(report.windows)
    positions = np.arange(len(hours))
    score_psi = [report.windows[h].get("score", {}).get("psi", np.nan) for h in hours]
    axes[1, 0].plot(positions, score_psi, "o-", label="score PSI")
    length_psi = [report.windows[h].get("length", {}).get("psi", np.nan) for h in hours]
    axes[1, 0].plot(positions, length_psi, "s--", label="length PSI")
    axes[1, 0].axhline(report.thresholds["psi"], color="tab:red", lw=1, label="threshold")
    axes[1, 0].set_title("PSI by hour", fontsize=9)
    axes[1, 0].legend(fontsize=8)
    unknown = [report.windows[h].get("unknown_words", {}).get("share", np.nan) for h in hours]
    axes[1, 1].plot(positions, unknown, "o-", label="live")
    if baseline.unknown_share is not None:
        axes[1, 1].axhline(baseline.unknown_share, color="tab:gray", lw=1, label="baseline")
    axes[1, 1].set_title("share of unknown words by hour", fontsize=9)
    axes[1, 1].legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xticks(
            positions, [h[5:].replace("T", " ") + "h" for h in hours], fontsize=7, rotation=30
        )
        ax.grid(alpha=0.3)
    figure.suptitle(f"Drift: {'yes' if report.drift else 'no'} ({report.capture})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110, format="png")
    plt.close(figure)
