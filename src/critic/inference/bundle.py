"""The model bundle: a folder that holds everything needed to answer, and nothing executable.

Every bundle holds:

    config.json         data, model and training settings (the split seed among them)
    metrics.json        validation and test metrics, timings, the learning curves
    calibration.json    the temperature and the rating map, fitted on the validation split
    bundle.json         the manifest: format version, model kind and the SHA-256 of every file

and, by the model's kind (``bundle.json`` says which):

* ``neural`` -- ``vocab.json`` (a JSON list of words) and ``model.safetensors`` (the
  weights); ``curves.png``, the learning curves;
* ``nbsvm`` -- ``ngrams.json`` (the n-grams, a JSON list) and ``model.safetensors``
  (``coefficients``, one per n-gram, and ``bias``);
* ``ensemble`` -- ``ensemble.json`` (the members, their weights and the bias) and a complete
  copy of every member bundle under ``members/<name>/``.

and ``reliability.png``, the reliability diagram before and after calibration on the test
split; ``domain.json`` (and for a neural model ``domain.safetensors``), the out-of-domain
signal fitted on its split (:mod:`critic.inference.domain`), signed by the manifest like the
rest but optional: a bundle from before it loads, and answers without a domain score.
Version 1 bundles (neural only, no calibration) still load: their score is their
probability and their rating is mapped from it.

No pickle anywhere: loading reads JSON and safetensors and never executes code from the bundle.
The manifest is written last, after every other file is complete on disk, and loading checks
every file against it: a bundle whose writing was interrupted, or whose files were damaged
since, fails with a clear error instead of loading something half-written.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_arrays
from safetensors.numpy import save_file as save_arrays
from safetensors.torch import load_file, save_file

from critic import __version__
from critic.config import RunConfig
from critic.data.vocab import Vocab
from critic.errors import BundleError, CriticError
from critic.evaluation.calibration import Calibration
from critic.fileio import package_files, sha256_file, write_atomic, write_text_atomic
from critic.inference.domain import DOMAIN_ARRAYS, DOMAIN_JSON, DomainModel
from critic.models import NBSVM_KIND, NEURAL, build_model, model_kind
from critic.models.nbsvm import NBSVM
from critic.training.checkpoints import has_checkpoint, remove_checkpoint

if TYPE_CHECKING:
    from critic.training.run import TrainingResult

MANIFEST = "bundle.json"
BUNDLE_FORMAT = "critic-bundle"
BUNDLE_VERSION = 2
READABLE_VERSIONS = (1, 2)
ENSEMBLE = "ensemble"
KIND_FILES = {
    NEURAL: ("config.json", "vocab.json", "model.safetensors", "metrics.json"),
    NBSVM_KIND: ("config.json", "ngrams.json", "model.safetensors", "metrics.json"),
    ENSEMBLE: ("config.json", "ensemble.json", "metrics.json"),
}
FILES = KIND_FILES[NEURAL]
CALIBRATION = "calibration.json"
MEMBERS = "members"


@dataclass(frozen=True)
class ShortReviews:
    """An ensemble's second set of weights and bias, for short reviews, and the gate that
    moves a review from one set to the other by its length: a review of ``n`` tokens is short
    to the degree ``g = 1 / (1 + (n / midpoint) ** slope)`` (one half at ``midpoint``), and its
    log-odds are ``(1 - g) * long + g * short``. Fitted on crops of the validation reviews
    (:mod:`critic.data.crops`)."""

    weights: list[float]
    bias: float
    # Between a snippet (about 20 words) and an IMDB review (about 180 at the median): g is
    # 0.96 at 20 tokens and 0.04 at 180.
    midpoint: float = 60.0
    slope: float = 3.0

    def share(self, lengths: np.ndarray) -> np.ndarray:
        """(reviews,) g: how short each review of ``lengths`` tokens counts as."""
        lengths = np.maximum(np.asarray(lengths, dtype=np.float64), 1.0)
        return 1.0 / (1.0 + (lengths / self.midpoint) ** self.slope)

    @classmethod
    def from_dict(cls, values: dict) -> ShortReviews:
        return cls(
            [float(w) for w in values["weights"]],
            float(values["bias"]),
            float(values["midpoint"]),
            float(values["slope"]),
        )

    def to_dict(self) -> dict:
        return {
            "weights": [float(w) for w in self.weights],
            "bias": float(self.bias),
            "midpoint": self.midpoint,
            "slope": self.slope,
        }


@dataclass
class Ensemble:
    """An ensemble's members and how their calibrated log-odds combine:
    ``logit = bias + sum(weight_i * member_logit_i / member_temperature_i)``
    (:func:`critic.inference.scoring.weighted_log_odds`), and with ``short`` a second such sum
    for short reviews, mixed in by length (:class:`ShortReviews`)."""

    members: list[Bundle]
    names: list[str]
    weights: list[float]
    bias: float
    short: ShortReviews | None = None


@dataclass
class Bundle:
    path: Path
    config: RunConfig
    vocab: Vocab | None
    model: Any
    """An ``nn.Module`` (neural), an :class:`~critic.models.nbsvm.NBSVM` or an :class:`Ensemble`."""
    metrics: dict
    kind: str = NEURAL
    calibration: Calibration = field(default_factory=Calibration)
    domain: DomainModel | None = None
    """The out-of-domain signal fitted for it (critic.inference.domain), if any."""


def bundle_kind(config: RunConfig) -> str:
    return ENSEMBLE if config.model.name == ENSEMBLE else model_kind(config.model.name)


def save_bundle(
    out: Path,
    config: RunConfig,
    vocab: Vocab | None,
    model: Any,
    metrics: dict,
    history: list[dict] | None = None,
    calibration: Calibration | None = None,
) -> Path:
    """Write a neural or nbsvm bundle into ``out`` (created if needed); the manifest goes last."""
    out = Path(out)
    kind = bundle_kind(config)
    if kind == ENSEMBLE:
        raise CriticError("an ensemble bundle is written by save_ensemble")
    files = _start(out, config, metrics, history, calibration)
    if kind == NEURAL:
        if vocab is None:
            raise CriticError("a neural bundle needs its vocabulary")
        vocab.save(out / "vocab.json")
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        write_atomic(
            out / "model.safetensors",
            lambda path: save_file(state, path, metadata={"format": "pt"}),
        )
        files += ["vocab.json", "model.safetensors"]
    else:
        ngrams = {"format": "critic-ngrams", "version": 1, "ngrams": model.vocabulary}
        write_text_atomic(out / "ngrams.json", json.dumps(ngrams, ensure_ascii=False))
        arrays = {
            "coefficients": np.ascontiguousarray(model.coefficients, dtype=np.float32),
            "bias": np.array([model.bias], dtype=np.float64),
        }
        write_atomic(out / "model.safetensors", lambda path: save_arrays(arrays, path))
        files += ["ngrams.json", "model.safetensors"]
    return _finish(out, config, kind, files)


def save_ensemble(
    out: Path,
    config: RunConfig,
    members: list[tuple[str, Path]],
    weights: list[float],
    bias: float,
    metrics: dict,
    calibration: Calibration,
    short: ShortReviews | None = None,
) -> Path:
    """Write an ensemble bundle: a copy of every member bundle (``name``, folder), and how
    they combine."""
    out = Path(out).resolve()
    for _, member in members:
        member = Path(member).resolve()
        if out == member or out in member.parents:
            raise CriticError(f"--out {out} would overwrite the member bundle {member}")
    files = _start(out, config, metrics, None, calibration)
    shutil.rmtree(out / MEMBERS, ignore_errors=True)
    entries = []
    for (name, member), weight in zip(members, weights, strict=True):
        manifest = verify_bundle(member)
        target = out / MEMBERS / name
        for relative in [*manifest["files"], MANIFEST]:
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(member) / relative, target / relative)
            files.append(f"{MEMBERS}/{name}/{relative}")
        entries.append({"name": name, "path": f"{MEMBERS}/{name}", "weight": float(weight)})
    description = {"format": "critic-ensemble", "members": entries, "bias": float(bias)}
    if short is not None:
        description["short"] = short.to_dict()
    write_text_atomic(out / "ensemble.json", json.dumps(description, indent=2))
    files.append("ensemble.json")
    return _finish(out, config, ENSEMBLE, files)


def _start(out, config, metrics, history, calibration) -> list[str]:
    """The files every bundle has; returns their names."""
    out.mkdir(parents=True, exist_ok=True)
    # Withdraw the old manifest first: from here until the new one lands, the folder is not a
    # loadable bundle, so a crash half-way leaves nothing that would load with mixed files.
    (out / MANIFEST).unlink(missing_ok=True)
    write_text_atomic(out / "config.json", json.dumps(config.to_dict(), indent=2))
    write_text_atomic(
        out / "metrics.json", json.dumps({**metrics, "history": history or []}, indent=2)
    )
    write_text_atomic(
        out / CALIBRATION, json.dumps((calibration or Calibration()).to_dict(), indent=2)
    )
    files = ["config.json", "metrics.json", CALIBRATION]
    # matplotlib: imported only when a bundle is written
    from critic.evaluation.evaluate import plot_curves, plot_reliability

    if history:
        write_atomic(out / "curves.png", lambda path: plot_curves(history, path))
        files.append("curves.png")
    if metrics.get("reliability"):
        title = f"{config.model.name}, {metrics['reliability'].get('split', 'test')} split"
        write_atomic(
            out / "reliability.png",
            lambda path: plot_reliability(metrics["reliability"], path, title),
        )
        files.append("reliability.png")
    return files


def _finish(out: Path, config: RunConfig, kind: str, files: list[str]) -> Path:
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "critic": __version__,
        "model": config.model.name,
        "kind": kind,
        "files": {name: sha256_file(out / name) for name in files},
    }
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2))
    return out


def save_training_result(out: Path, result: TrainingResult) -> Path:
    """Write a finished run's bundle, then drop its resume checkpoint (no longer needed)."""
    save_bundle(
        out,
        result.config,
        vocab=result.vocab,
        model=result.model,
        metrics=result.metrics,
        history=result.history,
        calibration=result.calibration,
    )
    remove_checkpoint(out)
    return Path(out)


def read_manifest(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise BundleError(f"no model bundle at {path}")
    if not path.is_dir():
        raise BundleError(f"{path} is not a model bundle folder")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        hint = (
            " (training was interrupted? continue it with critic train --resume)"
            if has_checkpoint(path)
            else ""
        )
        raise BundleError(f"{path} is not a complete critic bundle: {MANIFEST} is missing{hint}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise BundleError(f"{manifest_path} is corrupt ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{manifest_path} is not a critic bundle manifest")
    if manifest.get("version") not in READABLE_VERSIONS:
        raise BundleError(
            f"{path} is bundle format version {manifest.get('version')}; this critic reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    if manifest["version"] == 1:
        manifest["kind"] = NEURAL  # version 1 knew no other kind
    if manifest.get("kind") not in KIND_FILES:
        raise BundleError(f"{manifest_path}: unknown model kind {manifest.get('kind')!r}")
    return manifest


def verify_bundle(path: Path) -> dict:
    """Check every file against the manifest; return the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    files = manifest.get("files")
    required = set(KIND_FILES[manifest["kind"]])
    if manifest["version"] >= 2:
        required.add(CALIBRATION)
    if not isinstance(files, dict) or not required <= set(files):
        raise BundleError(f"{path / MANIFEST} does not list the bundle's files")
    for name, expected in files.items():
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise BundleError(f"{path / MANIFEST} names a file outside the bundle: {name}")
        file = path / relative
        if not file.is_file():
            raise BundleError(f"{path} is incomplete: {name} is missing")
        if sha256_file(file) != expected:
            raise BundleError(f"{path} is corrupt: {name} does not match its checksum")
    return manifest


TRACKING = "tracking"
"""The manifest's entry for the experiment-tracking run that made the bundle (critic train
--track): ``{"run_id": ..., "tracking_uri": ...}``. Not a file, so no checksum of its own."""


def record_run(path: Path, run: dict[str, str]) -> None:
    """Write the tracking run that made the bundle at ``path`` into its manifest (the files
    and their checksums stay as they are)."""
    manifest = read_manifest(path)
    manifest[TRACKING] = {str(key): str(value) for key, value in run.items()}
    write_text_atomic(Path(path) / MANIFEST, json.dumps(manifest, indent=2))


def recorded_run(path: Path) -> dict[str, str] | None:
    """The tracking run the manifest of the bundle at ``path`` names, else None."""
    run = read_manifest(path).get(TRACKING)
    return run if isinstance(run, dict) and isinstance(run.get("run_id"), str) else None


DOMAIN_FILES = (DOMAIN_JSON, DOMAIN_ARRAYS)


def attach_domain(path: Path, domain: DomainModel) -> None:
    """Write ``domain`` into the bundle at ``path`` and sign its files in the manifest
    (replacing any domain model it had)."""
    path = Path(path)
    manifest = verify_bundle(path)
    # First withdraw the old model's entries, so that a crash while its files are rewritten
    # leaves a bundle that loads (without a domain model) rather than one that fails its
    # checksums.
    manifest["files"] = {k: v for k, v in manifest["files"].items() if k not in DOMAIN_FILES}
    write_text_atomic(path / MANIFEST, json.dumps(manifest, indent=2))
    for name in DOMAIN_FILES:
        (path / name).unlink(missing_ok=True)
    for name in domain.write(path):
        manifest["files"][name] = sha256_file(path / name)
    write_text_atomic(path / MANIFEST, json.dumps(manifest, indent=2))


def load_bundle(path: Path, device: str | torch.device = "cpu") -> Bundle:
    """Load a bundle for inference (a neural model in eval mode)."""
    path = Path(path)
    manifest = verify_bundle(path)
    kind = manifest["kind"]
    try:
        config = RunConfig.from_dict(json.loads((path / "config.json").read_text(encoding="utf-8")))
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
        calibration = (
            Calibration.from_dict(json.loads((path / CALIBRATION).read_text(encoding="utf-8")))
            if CALIBRATION in manifest["files"]
            else Calibration()
        )
    except (ValueError, TypeError) as error:
        raise BundleError(f"{path}: config.json or metrics.json is invalid ({error})") from None
    except CriticError as error:
        raise BundleError(f"{path}: config.json is invalid ({error})") from None
    if kind != bundle_kind(config):
        raise BundleError(f"{path}: the manifest says {kind}, config.json {config.model.name}")
    vocab = None
    if kind == NEURAL:
        vocab = Vocab.load(path / "vocab.json")
        model = _load_neural(path, config, vocab, device)
    elif kind == NBSVM_KIND:
        model = _load_nbsvm(path, config)
    else:
        model = _load_ensemble(path, device)
    domain = DomainModel.read(path, manifest["files"])
    return Bundle(path, config, vocab, model, metrics, kind, calibration, domain)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _load_neural(path: Path, config: RunConfig, vocab: Vocab, device) -> torch.nn.Module:
    if len(vocab) != config.model.vocab_size:
        raise BundleError(
            f"{path}: vocab.json has {len(vocab)} words but the model expects {config.model.vocab_size}"
        )
    model = build_model(config.model)
    try:
        state = load_file(path / "model.safetensors", device=str(device))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as error:
        raise BundleError(
            f"{path}: the weights do not fit the model ({_first_line(error)})"
        ) from None
    return model.to(device).eval()


def _load_nbsvm(path: Path, config: RunConfig) -> NBSVM:
    try:
        payload = json.loads((path / "ngrams.json").read_text(encoding="utf-8"))
        ngrams = payload["ngrams"]
        arrays = load_arrays(path / "model.safetensors")
        coefficients, bias = arrays["coefficients"], arrays["bias"]
    except (ValueError, KeyError, TypeError, SafetensorError, OSError) as error:
        raise BundleError(f"{path}: the n-gram model is invalid ({_first_line(error)})") from None
    if not isinstance(ngrams, list) or not all(isinstance(g, str) for g in ngrams):
        raise BundleError(f"{path}: ngrams.json must hold a list of strings")
    if coefficients.ndim != 1 or bias.shape != (1,):
        raise BundleError(f"{path}: the n-gram model's arrays have the wrong shapes")
    return NBSVM.from_arrays(config.model, ngrams, coefficients, float(bias[0]))


def _load_ensemble(path: Path, device) -> Ensemble:
    try:
        payload = json.loads((path / "ensemble.json").read_text(encoding="utf-8"))
        entries = payload["members"]
        bias = float(payload["bias"])
        names = [str(entry["name"]) for entry in entries]
        weights = [float(entry["weight"]) for entry in entries]
        folders = [PurePosixPath(entry["path"]) for entry in entries]
        short = ShortReviews.from_dict(payload["short"]) if "short" in payload else None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise BundleError(f"{path}: ensemble.json is invalid ({_first_line(error)})") from None
    if not entries:
        raise BundleError(f"{path}: ensemble.json lists no members")
    if short is not None and (
        len(short.weights) != len(entries)
        or min(short.weights) < 0
        or short.midpoint <= 0
        or short.slope <= 0
    ):
        raise BundleError(
            f"{path}: ensemble.json's short-review weights must be one per member, none "
            "negative, with a positive midpoint and slope"
        )
    for folder in folders:
        if folder.is_absolute() or ".." in folder.parts or folder.parts[:1] != (MEMBERS,):
            raise BundleError(f"{path}: ensemble member {folder} lies outside {MEMBERS}/")
    members = [load_bundle(path / folder, device) for folder in folders]
    return Ensemble(members, names, weights, bias, short)


# --- the SageMaker model artifact -----------------------------------------------------------

INFERENCE_SCRIPT = """\
# SageMaker's PyTorch serving container imports this module (SAGEMAKER_PROGRAM=inference.py)
# and calls model_fn, input_fn, predict_fn and output_fn. critic's own source sits beside it
# in code/critic/, so the endpoint answers exactly as `critic serve` does.
import os

# What runs the neural models (`critic package --backend`); CRITIC_BACKEND in the model's
# environment, if set, wins.
os.environ.setdefault("CRITIC_BACKEND", {backend!r})

from critic.serving.handler import input_fn, model_fn, output_fn, predict_fn  # noqa: E402

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
"""
# The container brings torch; the predictor needs only these besides.
INFERENCE_REQUIREMENTS = "numpy>=1.26\nsafetensors>=0.4\n"
# --backend onnx or auto: ONNX Runtime, and the onnx package torch's exporter writes the graph
# with (the model is exported when the container loads it, as `critic serve` does).
ONNX_REQUIREMENTS = "onnxruntime>=1.17\nonnx>=1.15\n"
PACKAGE_BACKENDS = ("torch", "onnx", "auto")


def package_bundle(bundle: Path, out: Path, backend: str = "torch") -> Path:
    """Write ``model.tar.gz`` in the layout SageMaker's PyTorch serving container loads.

    The bundle's files at the top, ``code/inference.py`` and ``code/requirements.txt``, and
    critic's own source in ``code/critic/`` (the container has no critic to pip-install).
    ``backend`` is what runs the neural models there: ``torch`` (the container's own
    PyTorch, nothing to install), ``onnx`` or ``auto`` (ONNX Runtime, installed by the
    container from requirements.txt when it starts; see critic.inference.predictor.BACKENDS).
    """
    bundle, out = Path(bundle), Path(out)
    if backend not in PACKAGE_BACKENDS:
        raise BundleError(
            f"unknown backend {backend!r}; valid backends: {', '.join(PACKAGE_BACKENDS)}"
        )
    manifest = verify_bundle(bundle)
    source = Path(__file__).resolve().parents[1]  # the critic package, not inference/
    requirements = INFERENCE_REQUIREMENTS + (ONNX_REQUIREMENTS if backend != "torch" else "")

    def write(temporary: Path) -> None:
        with tarfile.open(temporary, "w:gz") as archive:
            for name in [*manifest["files"], MANIFEST]:
                archive.add(bundle / name, arcname=name)
            for name, text in (
                ("code/inference.py", INFERENCE_SCRIPT.format(backend=backend)),
                ("code/requirements.txt", requirements),
            ):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
            for relative in package_files(source):
                archive.add(source / relative, arcname=f"code/critic/{relative.as_posix()}")

    write_atomic(out, write)
    return out
