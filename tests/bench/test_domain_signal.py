"""bench/domain_signal.py: the domain score judged on IMDB, Rotten Tomatoes and Amazon."""

import pytest

from support.bench import load_bench_script
from support.data import vader_sdist


@pytest.mark.parametrize("bundle", ["trained_bundle", "nbsvm_bundle", "ensemble_bundle"])
def test_the_signal_benchmark_judges_every_domain_and_tells_them_apart(
    bundle, request, monkeypatch, tmp_path, capsys
):
    monkeypatch.setenv("CRITIC_VADER_SDIST", str(vader_sdist()))
    path = request.getfixturevalue(bundle)
    out = tmp_path / "domain.json"
    (row,) = load_bench_script("domain_signal").main(
        [
            str(path),
            "--max-reviews",
            "80",
            "--json",
            str(out),
            *(["--cost"] * (bundle == "nbsvm_bundle")),
        ]
    )
    assert out.is_file() and "| rotten_tomatoes (80) |" in capsys.readouterr().out
    assert row["imdb"]["reviews"] == 30  # the small bundles' test split
    for name in ("rotten_tomatoes", "amazon"):
        figures = row[name]
        assert figures["reviews"] == 80
        assert 0 <= figures["typical"] <= 1 and 0 <= figures["accuracy"] <= 1
        # One-line snippets against whole reviews: even a model of 300 reviews tells them
        # apart, if only by their length.
        assert figures["signal_auc"] > 0.8
    if bundle == "nbsvm_bundle":
        assert all(value > 0 for value in row["cost"].values())
    without = row["amazon"]["signal_auc_without_length"]
    assert (without is None) == (bundle == "ensemble_bundle")


def test_a_bundle_without_a_domain_model_is_refused_with_the_command_that_fits_one(
    trained_bundle, tmp_path
):
    import json
    import shutil

    copy = shutil.copytree(trained_bundle, tmp_path / "old")
    manifest = json.loads((copy / "bundle.json").read_text())
    del manifest["files"]["domain.json"], manifest["files"]["domain.safetensors"]
    (copy / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(SystemExit, match="critic domain"):
        load_bench_script("domain_signal").main([str(copy), "--max-reviews", "10"])
