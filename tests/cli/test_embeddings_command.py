"""critic embeddings train, and critic train --embeddings word2vec: one seed, the same files.

word2vec's settings are declared once (critic.data.embeddings.Word2VecSettings); the command
used to re-declare them with two training threads, whose updates land in the order the OS
schedules them, so the two-step path gave other vectors every run."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from critic.cli import app
from critic.data.embeddings import WORD2VEC_CACHE, Word2VecSettings

pytestmark = pytest.mark.slow

SMALL = ["--max-reviews", "300"]


def critic(*args: object, cache_dir: Path) -> str:
    result = CliRunner().invoke(
        app, [str(arg) for arg in args], env={"CRITIC_CACHE": str(cache_dir)}
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_the_command_trains_with_the_settings_own_defaults(tmp_path):
    out = critic(
        "embeddings", "train", "--out", tmp_path / "v.txt", *SMALL, "--epochs", "1",
        cache_dir=tmp_path,
    )  # fmt: skip
    defaults = Word2VecSettings()
    assert f"x {defaults.dimension}" in out
    assert defaults.workers == 1


def test_embeddings_train_run_twice_with_one_seed_writes_identical_files(tmp_path):
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    for path in (first, second):
        critic(
            "embeddings", "train", "--out", path, *SMALL, "--dimension", "16", "--epochs", "2",
            "--seed", "3", cache_dir=tmp_path,
        )  # fmt: skip
    assert first.read_bytes() == second.read_bytes()
    other_seed = tmp_path / "other.txt"
    critic(
        "embeddings", "train", "--out", other_seed, *SMALL, "--dimension", "16", "--epochs", "2",
        "--seed", "4", cache_dir=tmp_path,
    )  # fmt: skip
    assert other_seed.read_bytes() != first.read_bytes()  # the seed is what decides


def test_train_with_word2vec_run_twice_with_one_seed_trains_identical_vectors_and_model(
    tmp_path,
):
    bundles = []
    for run in ("one", "two"):
        cache = tmp_path / f"cache-{run}"  # no cache shared: each run trains its own vectors
        out = tmp_path / run
        critic(
            "train", "--model", "gru", "--out", out, "--embeddings", "word2vec", *SMALL,
            "--vocab-size", "500", "--max-length", "100", "--embedding-dim", "8",
            "--hidden-dim", "8", "--epochs", "1", "--device", "cpu", "--no-progress",
            cache_dir=cache,
        )  # fmt: skip
        (vectors,) = (cache / WORD2VEC_CACHE).glob("*/vectors.npy")
        bundles.append((vectors.read_bytes(), (out / "model.safetensors").read_bytes()))
    assert bundles[0][0] == bundles[1][0]
    assert bundles[0][1] == bundles[1][1]
