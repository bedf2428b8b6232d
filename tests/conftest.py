"""Shared fixtures: small real data, and one small trained bundle reused by many tests."""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from critic.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from critic.fileio import sha256_file
from critic.inference.bundle import MANIFEST, save_training_result
from critic.training.train import train

AWS_TEST_REGION = "us-east-1"
# The endpoints tests start run one worker process unless a test asks for more (with
# CRITIC_WORKERS or --workers): the default, one per core, would double every server's start-up
# on CI's two cores, and the reliability tests size their queues for one process.
# tests/serving/test_workers.py runs the default.
os.environ.setdefault("CRITIC_WORKERS", "1")
BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench_script(name: str):
    """bench/NAME.py as a module: the benchmarks are scripts, not part of the package (they
    import their sibling bench/servers.py, as they do when run from the command line)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


POSITIVE = [
    "A wonderful film. The acting is superb and the story moved me!",
    "I loved every minute; the best movie I have seen this year.",
    "Brilliant, funny and touching. Highly recommended.",
    "Great performances and a beautiful score. A classic.",
]
NEGATIVE = [
    "A boring, stupid mess. I don't recommend it at all.",
    "The worst film I have ever seen; awful acting and no plot.",
    "Terrible. I wanted my two hours back. Not good, not funny.",
    "Dull and predictable; the script is bad and the ending is worse.",
]


def small_run_config(**train_changes) -> RunConfig:
    """Embedded IMDB reviews, a few hundred of them, one quick epoch."""
    return RunConfig(
        data=DataConfig(max_reviews=300, vocab_size=2000, max_length=200),
        model=ModelConfig(),
        train=TrainConfig(**{"epochs": 1, "batch_size": 32, "device": "cpu", **train_changes}),
    )


def small_nbsvm_config(**model_changes) -> RunConfig:
    """The n-gram model on the same few hundred reviews and split as small_run_config."""
    config = small_run_config()
    return config.replace(
        data=config.data.replace(max_length=5000),
        model=ModelConfig(name="nbsvm", **{"min_df": 2, **model_changes}),
    )


# Fixtures that train a model (once per session or module): every test that uses one, even
# through another fixture, is marked slow. Tests that train by themselves say so with
# @pytest.mark.slow. `pytest -m "not slow"` runs the rest in seconds.
TRAINING_FIXTURES = {
    "trained_bundle",
    "second_bundle",
    "nbsvm_bundle",
    "ensemble_bundle",
    "cli_bundle",
}


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None:  # a fixture parametrised by the names of bundle fixtures
            used |= {value for value in callspec.params.values() if isinstance(value, str)}
        if used & TRAINING_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, cache_dir) -> Path:
    """A reference LSTM trained for two epochs on 300 embedded reviews, saved as a bundle."""
    out = tmp_path_factory.mktemp("bundle") / "lstm"
    config = small_run_config(epochs=2)
    result = train(config, out, cache_dir=cache_dir, progress=False, log=lambda _: None)
    save_training_result(out, result)
    return out


@pytest.fixture(scope="session")
def second_bundle(tmp_path_factory, cache_dir) -> Path:
    """Another small LSTM (other seed, one epoch): a challenger for variant tests."""
    out = tmp_path_factory.mktemp("bundle2") / "lstm"
    result = train(
        small_run_config(seed=1), out, cache_dir=cache_dir, progress=False, log=lambda _: None
    )
    save_training_result(out, result)
    return out


@pytest.fixture(scope="session")
def nbsvm_bundle(tmp_path_factory, cache_dir) -> Path:
    """The n-gram model fitted on the 300 reviews of trained_bundle's split (a few seconds)."""
    out = tmp_path_factory.mktemp("nbsvm") / "nbsvm"
    result = train(
        small_nbsvm_config(), out, cache_dir=cache_dir, progress=False, log=lambda _: None
    )
    save_training_result(out, result)
    return out


@pytest.fixture(scope="session")
def ensemble_bundle(tmp_path_factory, trained_bundle, nbsvm_bundle) -> Path:
    """An ensemble of the small LSTM and the small n-gram model."""
    from critic.inference.ensemble import build_ensemble

    out = tmp_path_factory.mktemp("ensemble") / "ensemble"
    build_ensemble([nbsvm_bundle, trained_bundle], out, log=lambda _: None)
    return out


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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory):
    """moto's server on a free loopback port, and an environment that sends boto3 there."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    hidden = tmp_path_factory.mktemp("no-aws-config")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                patch.delenv(name)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", AWS_TEST_REGION)
        patch.setenv("AWS_ENDPOINT_URL", url)
        patch.setenv("AWS_CONFIG_FILE", str(hidden / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(hidden / "credentials"))
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield url
    server.stop()


def write_aclimdb(root: Path, per_class: int = 6) -> Path:
    """A small folder shaped like the official aclImdb, ratings in the file names."""
    folder = root / "aclImdb"
    for part in ("train", "test"):
        for polarity, texts, ratings in (
            ("pos", POSITIVE, (7, 8, 9, 10)),
            ("neg", NEGATIVE, (1, 2, 3, 4)),
        ):
            target = folder / part / polarity
            target.mkdir(parents=True)
            for i in range(per_class):
                text = f"{texts[i % len(texts)]} ({part} review {i})"
                (target / f"{i}_{ratings[i % len(ratings)]}.txt").write_text(text, encoding="utf-8")
    (folder / "train" / "unsup").mkdir()
    (folder / "train" / "unsup" / "0_0.txt").write_text("unlabelled", encoding="utf-8")
    (folder / "README").write_text("Large Movie Review Dataset (test copy)")
    return folder


def write_aclimdb_tarball(root: Path, per_class: int = 6) -> Path:
    folder = write_aclimdb(root / "src", per_class)
    archive = root / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="aclImdb")
    return archive


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def csv_text(rows: list[list[str]]) -> str:
    import csv

    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def wait_for_ping(url, process, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stderr.read()}")
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    raise AssertionError("server did not answer /ping")


def wait_for(condition, seconds=60, every=0.05):
    """The first true value ``condition()`` returns, polled until ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("the condition did not hold in time")


def random_batch(vocab_size=50, batch=6, steps=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, steps + 1, (batch,), generator=generator)
    lengths[0] = steps
    token_ids = torch.randint(2, vocab_size, (batch, steps), generator=generator)
    token_ids[torch.arange(steps).expand(batch, -1) >= lengths.unsqueeze(1)] = 0
    return token_ids, lengths
