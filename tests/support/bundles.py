"""Editing and inspecting saved bundles (and model.tar.gz contents)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from critic.config import DataConfig, ModelConfig, RunConfig
from critic.data.text import tokenize_many
from critic.data.vocab import Vocab
from critic.fileio import sha256_file
from critic.inference.bundle import MANIFEST, save_bundle
from critic.models import build_model
from support.data import NEGATIVE, POSITIVE

# Reviews whose words make small_bundle's vocabulary (and test_onnx's reviews to compare on).
SMALL_BUNDLE_TEXTS = [*POSITIVE, *NEGATIVE, "Bad.", "Bad!", " ".join(POSITIVE + NEGATIVE)]


def small_bundle(tmp_path, name: str, **changes):
    """A random (untrained) neural bundle over the words of the test reviews."""
    vocab = Vocab.build(tokenize_many(SMALL_BUNDLE_TEXTS), size=60)
    config = RunConfig(
        data=DataConfig(max_length=30),
        model=ModelConfig(
            name=name, vocab_size=len(vocab), embedding_dim=8, hidden_dim=6, **changes
        ),
    )
    torch.manual_seed(0)
    return save_bundle(tmp_path / name, config, vocab, build_model(config.model), {})


def rewrite_manifest(bundle: Path, change) -> None:
    """Apply ``change`` to a bundle's manifest and sign every file it lists again, as the
    writer would: what is left for the loader to catch is what its own checks catch."""
    manifest = json.loads((bundle / MANIFEST).read_text())
    change(manifest)
    manifest["files"] = {name: sha256_file(bundle / name) for name in manifest["files"]}
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def edit_signed_json(bundle: Path, name: str, change) -> None:
    """Change one JSON file of a bundle and re-sign the manifest: what only the loader's own
    checks, not the checksums, can catch."""
    payload = json.loads((bundle / name).read_text())
    change(payload)
    (bundle / name).write_text(json.dumps(payload))
    rewrite_manifest(bundle, lambda manifest: None)


# What a bundle, or a model.tar.gz, may hold: data formats that loading cannot execute.
TEXT_SUFFIXES = (".py", ".txt", ".typed", ".html", ".css", ".js", ".md")


def safe_format(path: Path) -> str | None:
    """The format of a file whose suffix says what it is and whose bytes bear it out: "json",
    "safetensors", "png" or "text"; None for anything else (a pickle, a torch.save zip)."""
    data = path.read_bytes()
    suffix = path.suffix
    if suffix == ".json":
        try:
            json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return "json"
    if suffix == ".safetensors":
        # An 8-byte little-endian header length, that many bytes of JSON, then the tensors.
        size = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
        if not 0 < size <= len(data) - 8:
            return None
        try:
            header = json.loads(data[8 : 8 + size].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None
        return "safetensors" if isinstance(header, dict) else None
    if suffix == ".png":
        return "png" if data.startswith(b"\x89PNG\r\n\x1a\n") else None
    if suffix in TEXT_SUFFIXES:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "text" if "\x00" not in text else None
    return None


def unsafe_files(folder: Path) -> list[str]:
    """Every file under ``folder`` that is not of a safe format, relative to it."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and safe_format(p) is None
    )
