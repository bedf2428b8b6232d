"""Model quality: captured answers joined with their true labels, against the bundle's own.

What SageMaker Model Monitor's model-quality monitor does, on critic's capture: every captured
answer carries its id, ground truth names it (:mod:`critic.monitor.ground_truth`), and the
labelled answers give, per variant and hour by hour (and over the whole capture per variant):

* accuracy, with its Wilson interval (:func:`critic.evaluation.abtest.accuracy_interval`);
* the expected calibration error of the answers' probabilities
  (:func:`critic.evaluation.calibration.expected_calibration_error`, 15 bins);
* the share of answers that got a label;
* the change against the baseline bundle's validation accuracy and ECE (its metrics.json).

A window counts as a drop (:class:`QualityThresholds`) when it has ``min_labels`` labelled
answers and the accuracy's interval lies wholly below validation accuracy minus
``accuracy_margin``, or its ECE is past ``max_ece``. The exit status of ``critic monitor``
follows each variant's whole capture, as for drift.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from critic.errors import CriticError
from critic.fileio import write_text_atomic
from critic.monitor.drift import MonitorError, captured_answers, figure, unreadable_note
from critic.monitor.ground_truth import read_ground_truth
from critic.monitor.thresholds import QualityThresholds
from critic.serving.ab.dynamodb import is_dynamodb
from critic.serving.sidecar.capture import capture_files

REPORT_FILES = ("quality.md", "quality.json")


@dataclass
class Labelled:
    """The answers of one window: how many, and those with a true label."""

    answers: int = 0
    correct: list[int] = field(default_factory=list)
    """1 where a labelled answer was right."""
    truth: list[int] = field(default_factory=list)
    """The true label of each labelled answer that had a probability: 1 positive."""
    probabilities: list[float] = field(default_factory=list)
    """Its probability of positive."""

    def add(self, other: Labelled) -> None:
        self.answers += other.answers
        self.correct += other.correct
        self.truth += other.truth
        self.probabilities += other.probabilities


def _variant_of(path: Path, folder: Path) -> str:
    # SageMaker's layout: ENDPOINT/VARIANT/yyyy/mm/dd/hh/file.jsonl under the folder.
    parts = path.relative_to(folder).parts
    return parts[-6] if len(parts) >= 6 else "(unknown)"


def answer_ids(record: dict, answers: list[dict]) -> list[str | None]:
    """Each answer's id: its own (JSON answers carry one), else the record's inferenceId for
    the first answer (the only one it names), else the eventId of a record of one answer."""
    metadata = record.get("eventMetadata", {})
    ids: list[str | None] = [answer.get("id") for answer in answers]
    if ids and ids[0] is None:
        ids[0] = metadata.get("inferenceId") or (
            metadata.get("eventId") if len(answers) == 1 else None
        )
    return ids


def join_capture(
    folder: Path, labels: dict[str, str]
) -> tuple[dict[str, dict[str, Labelled]], list[str]]:
    """Per variant, per hour (``2026-11-29T05``): the captured answers with their labels; and
    the lines that could not be read."""
    folder = Path(folder)
    files = capture_files(folder)
    if not files:
        raise MonitorError(f"{folder} holds no capture files (*.jsonl)")
    windows: dict[str, dict[str, Labelled]] = defaultdict(lambda: defaultdict(Labelled))
    unreadable = []
    for path in files:
        variant = _variant_of(path, folder)
        for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                hour = record["eventMetadata"]["inferenceTime"][:13]
                answers = captured_answers(record)
            except (ValueError, KeyError, TypeError, CriticError) as error:
                unreadable.append(f"{path}:{number}: {error}")
                continue
            window = windows[variant][hour]
            window.answers += len(answers)
            for answer, answer_id in zip(answers, answer_ids(record, answers), strict=True):
                truth = labels.get(answer_id) if answer_id is not None else None
                if truth is None:
                    continue
                window.correct.append(int(answer["label"] == truth))
                if answer.get("probability") is not None:
                    window.truth.append(int(truth == "positive"))
                    window.probabilities.append(float(answer["probability"]))
    return {variant: dict(sorted(hours.items())) for variant, hours in windows.items()}, unreadable


def quality_of(window: Labelled, baseline: dict, limits: QualityThresholds) -> dict:
    """The figures of one window and whether they count as a drop."""
    from critic.evaluation.abtest import accuracy_interval
    from critic.evaluation.calibration import expected_calibration_error

    labelled = len(window.correct)
    result: dict = {
        "answers": window.answers,
        "labelled": labelled,
        "label_share": labelled / window.answers if window.answers else None,
        "judged": labelled >= limits.min_labels,
        "accuracy": None,
        "interval": None,
        "ece": None,
    }
    breaches = []
    if labelled:
        right = sum(window.correct)
        result["accuracy"] = right / labelled
        low, high = accuracy_interval(right, labelled, limits.confidence)
        result["interval"] = [low, high]
        base = baseline.get("accuracy")
        if base is not None:
            result["accuracy_change"] = result["accuracy"] - base
            floor = base - limits.accuracy_margin
            if high < floor:
                breaches.append(
                    f"accuracy {result['accuracy']:.1%} (interval up to {high:.1%}) below "
                    f"validation {base:.1%} - {limits.accuracy_margin:.0%}"
                )
    if window.probabilities:
        ece = expected_calibration_error(np.asarray(window.truth), np.asarray(window.probabilities))
        result["ece"] = ece
        if baseline.get("ece") is not None:
            result["ece_change"] = ece - baseline["ece"]
        if ece > limits.max_ece:
            breaches.append(f"ECE {ece:.3f} > {limits.max_ece:g}")
    result["breaches"] = breaches if result["judged"] else []
    result["dropped"] = bool(result["breaches"])
    return result


def bundle_baseline(bundle: Path) -> dict:
    """The bundle's held-out figures, as training recorded them: validation accuracy and the
    (calibrated) validation ECE."""
    from critic.inference.bundle import verify_bundle

    bundle = Path(bundle)
    verify_bundle(bundle)
    try:
        metrics = json.loads((bundle / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise MonitorError(f"{bundle}: metrics.json cannot be read ({error})") from None
    ece = metrics.get("val_ece_after", metrics.get("val_ece_before"))
    return {
        "bundle": str(bundle),
        "model": metrics.get("model"),
        "split": "validation",
        "accuracy": metrics.get("val_accuracy"),
        "ece": ece,
    }


@dataclass
class QualityReport:
    baseline: dict
    thresholds: dict
    variants: dict[str, dict]
    """Per variant: ``overall`` (the whole capture) and ``windows`` (by hour)."""
    ground_truth: list[str]
    labels: int
    capture: str = ""
    unreadable: list[str] = field(default_factory=list)

    @property
    def dropped(self) -> bool:
        return any(figures["overall"]["dropped"] for figures in self.variants.values())

    def to_dict(self) -> dict:
        return {**asdict(self), "dropped": self.dropped}

    def to_markdown(self) -> str:
        base = self.baseline
        breaches = [
            f"{name}: " + "; ".join(figures["overall"]["breaches"])
            for name, figures in self.variants.items()
            if figures["overall"]["dropped"]
        ]
        judged = any(figures["overall"]["judged"] for figures in self.variants.values())
        verdict = (
            "**QUALITY DROP**: " + " | ".join(breaches)
            if breaches
            else (
                "no drop past the thresholds"
                if judged
                else "too few labelled answers to judge "
                f"(fewer than {self.thresholds['min_labels']})"
            )
        )
        lines = [
            "# Model quality report",
            "",
            f"Capture `{self.capture}` joined with {self.labels:,} label(s) from "
            + ", ".join(f"`{source}`" for source in self.ground_truth)
            + f". Baseline: `{base['bundle']}` ({base['model']}), validation accuracy "
            f"{figure(base['accuracy'], '.1%')}, ECE {figure(base['ece'], '.3f')}.",
            "",
            f"Verdict: {verdict}.",
            "",
            "| variant | window | answers | labelled | accuracy (interval) | vs validation | "
            "ECE | vs validation | drop |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, figures in self.variants.items():
            lines.append(_row(name, "all", figures["overall"]))
            lines += [_row(name, hour, window) for hour, window in figures["windows"].items()]
        lines += [
            "",
            f"Thresholds: a drop when the accuracy's {self.thresholds['confidence']:.0%} Wilson "
            f"interval lies below validation accuracy - {self.thresholds['accuracy_margin']:g}, "
            f"or ECE > {self.thresholds['max_ece']:g}; a window needs "
            f"{self.thresholds['min_labels']} labelled answers to be judged.",
        ]
        return "\n".join(lines + unreadable_note(self.unreadable)) + "\n"


def _row(variant: str, window: str, figures: dict) -> str:
    accuracy = figure(figures["accuracy"], ".1%")
    if figures["interval"] is not None:
        low, high = figures["interval"]
        accuracy += f" ({low:.1%}-{high:.1%})"
    drop = "yes" if figures["dropped"] else ("no" if figures["judged"] else "not judged")
    return (
        f"| {variant} | {window} | {figures['answers']:,} | {figures['labelled']:,} "
        f"({figure(figures['label_share'], '.0%')}) | {accuracy} | "
        f"{figure(figures.get('accuracy_change'), '+.1%')} | {figure(figures['ece'], '.3f')} | "
        f"{figure(figures.get('ece_change'), '+.3f')} | {drop} |"
    )


def monitor_quality(
    capture: Path,
    baseline_bundle: Path,
    ground_truth: Iterable[Path],
    thresholds: QualityThresholds | None = None,
    log: Callable = print,
) -> QualityReport:
    """Join a capture folder with ground truth; quality per variant, overall and by hour."""
    thresholds = thresholds or QualityThresholds()
    # A table stays a URL: Path() would fold "dynamodb://" to "dynamodb:/".
    sources = [source if is_dynamodb(str(source)) else Path(source) for source in ground_truth]
    if not sources:
        raise MonitorError("no ground truth given")
    labels = read_ground_truth(sources)
    log(f"monitor: {len(labels):,} label(s) from {len(sources)} ground-truth source(s)")
    baseline = bundle_baseline(baseline_bundle)
    windows, unreadable = join_capture(Path(capture), labels)
    if not windows:
        raise MonitorError(f"no capture line in {capture} could be read: {unreadable[0]}")
    variants = {}
    for name, hours in sorted(windows.items()):
        whole = Labelled()
        for window in hours.values():
            whole.add(window)
        variants[name] = {
            "overall": quality_of(whole, baseline, thresholds),
            "windows": {hour: quality_of(w, baseline, thresholds) for hour, w in hours.items()},
        }
    return QualityReport(
        baseline=baseline,
        thresholds=asdict(thresholds),
        variants=variants,
        ground_truth=[str(source) for source in sources],
        labels=len(labels),
        capture=str(capture),
        unreadable=unreadable,
    )


def write_quality_report(report: QualityReport, out: Path) -> list[Path]:
    """quality.md and quality.json in ``out`` (created if needed)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "quality.md", report.to_markdown())
    write_text_atomic(out / "quality.json", json.dumps(report.to_dict(), indent=2) + "\n")
    return [out / name for name in REPORT_FILES]
