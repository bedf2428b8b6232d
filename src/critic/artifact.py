"""The model bundle: a folder that holds everything needed to answer, and nothing executable.

    config.json         data, model and training settings (the split seed among them)
    vocab.json          the vocabulary, a JSON list of words
    model.safetensors   the weights
    metrics.json        validation and test metrics, timings, the learning curves
    curves.png          the learning curves
    bundle.json         the manifest: format version and the SHA-256 of every file above

No pickle anywhere: loading reads JSON and safetensors and never executes code from the bundle.
The manifest is written last, after every other file is complete on disk, and loading checks
every file against it: a bundle whose writing was interrupted, or whose files were damaged
since, fails with a clear error instead of loading something half-written.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from critic import __version__
from critic.config import RunConfig
from critic.data.vocab import Vocab
from critic.errors import BundleError, CriticError
from critic.fileio import write_atomic, write_text_atomic
from critic.models import build_model

if TYPE_CHECKING:
    from critic.train import TrainingResult

MANIFEST = "bundle.json"
BUNDLE_FORMAT = "critic-bundle"
BUNDLE_VERSION = 1
FILES = ("config.json", "vocab.json", "model.safetensors", "metrics.json")


@dataclass
class Bundle:
    path: Path
    config: RunConfig
    vocab: Vocab
    model: torch.nn.Module
    metrics: dict


def save_bundle(
    out: Path,
    config: RunConfig,
    vocab: Vocab,
    model: torch.nn.Module,
    metrics: dict,
    history: list[dict] | None = None,
) -> Path:
    """Write a bundle into ``out`` (created if needed); the manifest goes last."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Withdraw the old manifest first: from here until the new one lands, the folder is not a
    # loadable bundle, so a crash half-way leaves nothing that would load with mixed files.
    (out / MANIFEST).unlink(missing_ok=True)
    write_text_atomic(out / "config.json", json.dumps(config.to_dict(), indent=2))
    vocab.save(out / "vocab.json")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    write_atomic(
        out / "model.safetensors", lambda path: save_file(state, path, metadata={"format": "pt"})
    )
    write_text_atomic(
        out / "metrics.json", json.dumps({**metrics, "history": history or []}, indent=2)
    )
    files = list(FILES)
    if history:
        from critic.evaluate import plot_curves  # matplotlib: only when a bundle is written

        write_atomic(out / "curves.png", lambda path: plot_curves(history, path))
        files.append("curves.png")
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "critic": __version__,
        "model": config.model.name,
        "files": {name: _sha256(out / name) for name in files},
    }
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=2))
    return out


def save_training_result(out: Path, result: TrainingResult) -> Path:
    """Write a finished run's bundle, then drop its resume checkpoint (no longer needed)."""
    from critic.train import remove_checkpoint

    save_bundle(out, result.config, result.vocab, result.model, result.metrics, result.history)
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
            if (path / "checkpoint").is_dir() or (path / ".checkpoint.old").is_dir()
            else ""
        )
        raise BundleError(f"{path} is not a complete critic bundle: {MANIFEST} is missing{hint}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise BundleError(f"{manifest_path} is corrupt ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{manifest_path} is not a critic bundle manifest")
    if manifest.get("version") != BUNDLE_VERSION:
        raise BundleError(
            f"{path} is bundle format version {manifest.get('version')}; "
            f"this critic reads version {BUNDLE_VERSION}"
        )
    return manifest


def verify_bundle(path: Path) -> dict:
    """Check every file against the manifest; return the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    files = manifest.get("files")
    if not isinstance(files, dict) or not set(FILES) <= set(files):
        raise BundleError(f"{path / MANIFEST} does not list the bundle's files")
    for name, expected in files.items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path} is incomplete: {name} is missing")
        if _sha256(file) != expected:
            raise BundleError(f"{path} is corrupt: {name} does not match its checksum")
    return manifest


def load_bundle(path: Path, device: str | torch.device = "cpu") -> Bundle:
    """Load a bundle for inference (the model in eval mode)."""
    path = Path(path)
    verify_bundle(path)
    try:
        config = RunConfig.from_dict(json.loads((path / "config.json").read_text(encoding="utf-8")))
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    except (ValueError, TypeError) as error:
        raise BundleError(f"{path}: config.json or metrics.json is invalid ({error})") from None
    except CriticError as error:
        raise BundleError(f"{path}: config.json is invalid ({error})") from None
    vocab = Vocab.load(path / "vocab.json")
    if len(vocab) != config.model.vocab_size:
        raise BundleError(
            f"{path}: vocab.json has {len(vocab)} words but the model expects {config.model.vocab_size}"
        )
    model = build_model(config.model)
    try:
        state = load_file(path / "model.safetensors", device=str(device))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as error:
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise BundleError(f"{path}: the weights do not fit the model ({first_line})") from None
    model.to(device).eval()
    return Bundle(path, config, vocab, model, metrics)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- the SageMaker model artifact -----------------------------------------------------------

INFERENCE_SCRIPT = """\
# SageMaker's PyTorch serving container imports this module (SAGEMAKER_PROGRAM=inference.py)
# and calls model_fn, input_fn, predict_fn and output_fn. critic's own source sits beside it
# in code/critic/, so the endpoint answers exactly as `critic serve` does.
from critic.serving.handler import input_fn, model_fn, output_fn, predict_fn

__all__ = ["input_fn", "model_fn", "output_fn", "predict_fn"]
"""
# The container brings torch; the predictor needs only these besides.
INFERENCE_REQUIREMENTS = "numpy>=1.26\nsafetensors>=0.4\n"


def package_bundle(bundle: Path, out: Path) -> Path:
    """Write ``model.tar.gz`` in the layout SageMaker's PyTorch serving container loads.

    The bundle's files at the top, ``code/inference.py`` and ``code/requirements.txt``, and
    critic's own source in ``code/critic/`` (the container has no critic to pip-install).
    """
    bundle, out = Path(bundle), Path(out)
    manifest = verify_bundle(bundle)
    source = Path(__file__).resolve().parent

    def write(temporary: Path) -> None:
        with tarfile.open(temporary, "w:gz") as archive:
            for name in [*manifest["files"], MANIFEST]:
                archive.add(bundle / name, arcname=name)
            for name, text in (
                ("code/inference.py", INFERENCE_SCRIPT),
                ("code/requirements.txt", INFERENCE_REQUIREMENTS),
            ):
                data = text.encode()
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o644
                archive.addfile(info, io.BytesIO(data))
            for file in sorted(source.rglob("*")):
                if (
                    file.is_file()
                    and "__pycache__" not in file.parts
                    and file.suffix in (".py", ".typed", ".html", ".css", ".js")
                ):
                    archive.add(file, arcname=f"code/critic/{file.relative_to(source).as_posix()}")

    write_atomic(out, write)
    return out
