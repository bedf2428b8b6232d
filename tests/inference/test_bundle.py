import json
import pickle
import shutil

import pytest
import torch

from critic.errors import BundleError
from critic.inference.bundle import MANIFEST, load_bundle
from critic.inference.predictor import Predictor, rating_from_probability
from support.bundles import edit_signed_json, rewrite_manifest, safe_format, unsafe_files

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
        "calibration.json",
        "config.json",
        "curves.png",
        "domain.json",
        "domain.safetensors",
        "metrics.json",
        "model.safetensors",
        "reliability.png",
        "vocab.json",
    ]
    for name in ("bundle.json", "calibration.json", "config.json", "metrics.json", "vocab.json"):
        json.loads((trained_bundle / name).read_text())
    assert unsafe_files(trained_bundle) == []
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
    bundle = copy_bundle(trained_bundle, tmp_path)
    # A consistent, but wrong, bundle.
    edit_signed_json(bundle, "config.json", lambda config: config["model"].update(hidden_dim=7))
    with pytest.raises(BundleError, match="weights do not fit the model"):
        load_bundle(bundle)


def test_a_bundle_of_an_unknown_format_version_is_refused(trained_bundle, tmp_path):
    bundle = copy_bundle(trained_bundle, tmp_path)
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["version"] = 99
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version 99"):
        load_bundle(bundle)


def test_the_manifest_names_the_kind_and_lists_the_calibration(trained_bundle, nbsvm_bundle):
    for bundle, kind in ((trained_bundle, "neural"), (nbsvm_bundle, "nbsvm")):
        manifest = json.loads((bundle / MANIFEST).read_text())
        assert manifest["version"] == 2 and manifest["kind"] == kind
        assert "calibration.json" in manifest["files"]
        assert load_bundle(bundle).kind == kind


def test_an_nbsvm_bundle_is_json_and_safetensors_and_loads_the_same(nbsvm_bundle, tmp_path):
    names = sorted(p.name for p in nbsvm_bundle.iterdir())
    assert names == [
        "bundle.json",
        "calibration.json",
        "config.json",
        "domain.json",
        "metrics.json",
        "model.safetensors",
        "ngrams.json",
        "reliability.png",
    ]
    ngrams = json.loads((nbsvm_bundle / "ngrams.json").read_text())["ngrams"]
    bundle = load_bundle(nbsvm_bundle)
    assert ngrams == bundle.model.vocabulary and len(ngrams) == bundle.config.model.vocab_size
    assert unsafe_files(nbsvm_bundle) == []
    first = Predictor.load(nbsvm_bundle).predict(REVIEWS, explain=True)
    assert (
        Predictor.load(copy_bundle(nbsvm_bundle, tmp_path)).predict(REVIEWS, explain=True) == first
    )


def test_an_nbsvm_bundle_whose_arrays_do_not_fit_its_n_grams_is_refused(nbsvm_bundle, tmp_path):
    bundle = copy_bundle(nbsvm_bundle, tmp_path)
    edit_signed_json(bundle, "ngrams.json", lambda payload: payload["ngrams"].pop())
    with pytest.raises(BundleError, match="n-grams but"):
        load_bundle(bundle)


def test_a_version_1_bundle_still_loads_and_scores_its_raw_probability(trained_bundle, tmp_path):
    bundle = copy_bundle(trained_bundle, tmp_path)
    (bundle / "calibration.json").unlink()

    def as_version_1(manifest):
        manifest["version"] = 1
        del manifest["kind"]
        del manifest["files"]["calibration.json"]

    rewrite_manifest(bundle, as_version_1)
    old = Predictor.load(bundle)
    assert old.kind == "neural" and old.calibration.temperature == 1.0
    for result in old.predict(REVIEWS):
        assert result["score"] == pytest.approx(result["probability"])
        assert result["rating"] == rating_from_probability(result["probability"])
    new = Predictor.load(trained_bundle).predict(REVIEWS)
    assert [r["probability"] for r in old.predict(REVIEWS)] == [r["probability"] for r in new]


def test_a_version_2_bundle_without_its_calibration_is_incomplete(trained_bundle, tmp_path):
    bundle = copy_bundle(trained_bundle, tmp_path)
    rewrite_manifest(bundle, lambda manifest: manifest["files"].pop("calibration.json"))
    with pytest.raises(BundleError, match="does not list the bundle's files"):
        load_bundle(bundle)


def test_an_ensemble_bundle_holds_a_checked_copy_of_every_member(ensemble_bundle, tmp_path):
    manifest = json.loads((ensemble_bundle / MANIFEST).read_text())
    assert manifest["kind"] == "ensemble"
    members = sorted(p.name for p in (ensemble_bundle / "members").iterdir())
    assert members == ["0-nbsvm", "1-lstm"]
    assert "members/1-lstm/model.safetensors" in manifest["files"]
    loaded = load_bundle(ensemble_bundle)
    assert [m.kind for m in loaded.model.members] == ["nbsvm", "neural"]
    bundle = copy_bundle(ensemble_bundle, tmp_path)
    weights = bundle / "members" / "1-lstm" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(BundleError, match=r"corrupt: members/1-lstm/model\.safetensors"):
        load_bundle(bundle)


def test_an_ensemble_member_outside_the_bundle_is_refused(ensemble_bundle, tmp_path):
    bundle = copy_bundle(ensemble_bundle, tmp_path)
    edit_signed_json(
        bundle, "ensemble.json", lambda payload: payload["members"][0].update(path="../elsewhere")
    )
    with pytest.raises(BundleError, match="outside members/"):
        load_bundle(bundle)


def test_a_manifest_naming_a_file_outside_the_bundle_is_refused(trained_bundle, tmp_path):
    bundle = copy_bundle(trained_bundle, tmp_path)
    manifest = json.loads((bundle / MANIFEST).read_text())
    manifest["files"]["../secret"] = "0" * 64
    (bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="outside the bundle"):
        load_bundle(bundle)


def test_an_ensemble_bundle_holds_only_safe_formats_members_included(ensemble_bundle):
    assert unsafe_files(ensemble_bundle) == []


@pytest.mark.parametrize("name", ["model.safetensors", "vocab.json", "calibration.json"])
@pytest.mark.parametrize(
    "pickled",
    [
        lambda path: torch.save({"weight": torch.zeros(3)}, path),  # a zip holding a pickle
        lambda path: path.write_bytes(pickle.dumps({"weight": [0.0] * 3}, protocol=2)),
        lambda path: path.write_bytes(pickle.dumps(["the", "film"], protocol=0)),
    ],
    ids=["torch.save", "pickle-protocol-2", "pickle-protocol-0"],
)
def test_the_safe_format_check_catches_a_pickle_under_any_name(
    trained_bundle, tmp_path, name, pickled
):
    bundle = copy_bundle(trained_bundle, tmp_path)
    assert safe_format(bundle / name) is not None
    pickled(bundle / name)
    assert safe_format(bundle / name) is None
    assert unsafe_files(bundle) == [name]
