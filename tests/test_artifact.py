import json
import shutil

import pytest

from critic.artifact import MANIFEST, load_bundle
from critic.errors import BundleError
from critic.predictor import Predictor

REVIEWS = ["A wonderful film, I loved it!", "Not good. Boring and far too long.", "meh"]


def copy_bundle(trained_bundle, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(trained_bundle, target)
    return target


def test_a_loaded_bundle_gives_identical_predictions(trained_bundle, tmp_path):
    first = Predictor.load(trained_bundle).predict(REVIEWS)
    moved = copy_bundle(trained_bundle, tmp_path)
    assert Predictor.load(moved).predict(REVIEWS) == first


def test_the_bundle_holds_json_safetensors_and_a_plot_and_no_pickle(trained_bundle):
    names = sorted(p.name for p in trained_bundle.iterdir())
    assert names == [
        "bundle.json",
        "config.json",
        "curves.png",
        "metrics.json",
        "model.safetensors",
        "vocab.json",
    ]
    for name in ("bundle.json", "config.json", "metrics.json", "vocab.json"):
        json.loads((trained_bundle / name).read_text())
    weights = (trained_bundle / "model.safetensors").read_bytes()
    assert b"\x80\x04" not in weights[:16]  # no pickle protocol header
    metrics = json.loads((trained_bundle / "metrics.json").read_text())
    for key in (
        "val_accuracy",
        "test_accuracy",
        "test_loss",
        "epochs",
        "train_seconds",
        "train_reviews_per_second",
    ):
        assert key in metrics
    config = json.loads((trained_bundle / "config.json").read_text())
    assert config["data"]["split_seed"] == 1234


def test_a_missing_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(BundleError, match="no model bundle at"):
        load_bundle(tmp_path / "nowhere")


def test_a_folder_without_a_manifest_is_not_a_bundle(trained_bundle, tmp_path):
    bundle = copy_bundle(trained_bundle, tmp_path)
    (bundle / MANIFEST).unlink()
    with pytest.raises(BundleError, match="not a complete critic bundle"):
        load_bundle(bundle)
    (bundle / "checkpoint").mkdir()
    with pytest.raises(BundleError, match="--resume"):
        load_bundle(bundle)


@pytest.mark.parametrize("name", ["model.safetensors", "vocab.json", "config.json", "metrics.json"])
def test_a_damaged_file_fails_its_checksum(trained_bundle, tmp_path, name):
    bundle = copy_bundle(trained_bundle, tmp_path)
    data = (bundle / name).read_bytes()
    (bundle / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=f"corrupt: {name}"):
        load_bundle(bundle)


def test_a_missing_file_is_named(trained_bundle, tmp_path):
    bundle = copy_bundle(trained_bundle, tmp_path)
    (bundle / "vocab.json").unlink()
    with pytest.raises(BundleError, match=r"vocab\.json is missing"):
        load_bundle(bundle)


def test_a_corrupt_manifest_is_a_clear_error(trained_bundle, tmp_path):
    bundle = copy_bundle(trained_bundle, tmp_path)
    (bundle / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="corrupt"):
        load_bundle(bundle)


def test_weights_that_do_not_fit_the_config_are_a_clear_error(trained_bundle, tmp_path):
    from critic.artifact import _sha256

    bundle = copy_bundle(trained_bundle, tmp_path)
    config = json.loads((bundle / "config.json").read_text())
    config["model"]["hidden_dim"] = 7
    (bundle / "config.json").write_text(json.dumps(config))
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"]["config.json"] = _sha256(
        bundle / "config.json"
    )  # a consistent, but wrong, bundle
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="weights do not fit the model"):
        load_bundle(bundle)


def test_a_bundle_of_an_unknown_format_version_is_refused(trained_bundle, tmp_path):
    bundle = copy_bundle(trained_bundle, tmp_path)
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["version"] = 99
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version 99"):
        load_bundle(bundle)
