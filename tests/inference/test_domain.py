import json
import shutil

import numpy as np
import pytest
import torch

from critic.config import ModelConfig
from critic.data.prepare import load_splits
from critic.errors import BundleError, CriticError
from critic.fileio import sha256_file
from critic.inference.bundle import MANIFEST, attach_domain, load_bundle, verify_bundle
from critic.inference.domain import (
    BOTH,
    DOMAIN_JSON,
    TYPICAL_SHARE,
    UP,
    DomainModel,
    fit_domain,
    fit_gaussians,
    robust_scale,
)
from critic.inference.domain_fit import fit_bundle_domain
from critic.inference.predictor import Predictor
from critic.inference.scoring import output_layers, with_pooled
from critic.models import build_model
from support.data import FROM_SCRATCH

GIBBERISH = "Zqxv blorf wuggle trenz pliv quorb snaff yelm drofk vintz " * 6


def test_the_density_is_the_mahalanobis_distance_to_the_nearer_class_mean():
    generator = np.random.default_rng(0)
    pooled = generator.normal(size=(400, 6)) + np.repeat([[2.0] * 6, [-2.0] * 6], 200, axis=0)
    labels = np.repeat([1, 0], 200)
    means, precision = fit_gaussians(pooled, labels)
    model = DomainModel(("density",), (UP,), np.zeros(1), np.ones(1), 1.0, means, precision)
    points = generator.normal(size=(5, 6)) * 3
    by_hand = [min(float(np.sqrt((p - m) @ precision @ (p - m))) for m in means) for p in points]
    assert np.allclose(model.density(points), by_hand)


def test_about_95_percent_of_the_reviews_it_was_fitted_on_are_typical():
    raw = np.random.default_rng(1).normal(size=(2000, 3))
    model = fit_domain((("a", UP), ("b", BOTH), ("c", UP)), raw)
    typical = model.scores(raw) <= 1.0
    assert abs(typical.mean() - TYPICAL_SHARE) < 0.002
    assert model.fitted["validation_reviews"] == 2000


def test_a_feature_counted_upwards_is_typical_below_its_median_and_length_both_ways():
    raw = np.random.default_rng(2).normal(size=(1000, 2))
    model = fit_domain((("unknown", UP), ("length", BOTH)), raw)
    centre = model.center
    assert model.scores([[centre[0] - 50, centre[1]]])[0] == pytest.approx(0.0)
    assert model.scores([[centre[0], centre[1] - 50]])[0] > 1
    assert model.scores([[centre[0], centre[1] + 50]])[0] > 1
    assert model.scores([[centre[0] + 50, centre[1]]])[0] > 1


def test_a_feature_that_is_zero_for_most_reviews_still_gets_a_positive_spread():
    values = np.zeros((100, 2))
    values[:3, 0] = 1.0
    _, spread = robust_scale(values)
    assert (spread > 0).all()
    assert spread[1] == 1.0  # constant: nothing to scale by


@pytest.mark.parametrize("name", FROM_SCRATCH)
def test_every_neural_architecture_shows_what_its_output_layer_reads(name):
    model = build_model(ModelConfig(name=name, vocab_size=50, embedding_dim=8, hidden_dim=6))
    model.eval()
    token_ids = torch.randint(2, 50, (3, 9))
    lengths = torch.tensor([9, 5, 1])
    with torch.no_grad():
        logits, pooled = with_pooled(model, output_layers(model), token_ids, lengths)
        assert torch.allclose(logits, model(token_ids, lengths))
    assert pooled.shape[0] == 3 and pooled.ndim == 2


@pytest.fixture(scope="module", params=["trained_bundle", "nbsvm_bundle", "ensemble_bundle"])
def predictor(request):
    return Predictor.load(request.getfixturevalue(request.param))


def test_every_answer_carries_a_domain_score_and_whether_it_is_typical(predictor):
    answer = predictor.predict("A wonderful film, the acting is superb.")
    assert set(answer["domain"]) == {"score", "typical"}
    assert isinstance(answer["domain"]["score"], float) and answer["domain"]["score"] >= 0
    assert answer["domain"]["typical"] == (answer["domain"]["score"] <= 1.0)


def test_a_reviews_domain_score_does_not_depend_on_its_neighbours(predictor):
    reviews = ["A wonderful film.", GIBBERISH, "The worst film I have seen, dull and long."]
    together = [answer["domain"] for answer in predictor.predict(reviews)]
    alone = [predictor.predict(review)["domain"] for review in reviews]
    assert together == alone


def test_words_the_model_never_saw_are_unlike_its_reviews(predictor):
    assert predictor.predict(GIBBERISH)["domain"]["typical"] is False


def test_about_95_percent_of_the_validation_reviews_score_typical(predictor):
    validation = load_splits(predictor.bundle.config.data)["validation"]
    _, scores = predictor.assess(validation.texts)
    assert abs((scores <= 1.0).mean() - TYPICAL_SHARE) <= 1.5 / len(validation) + 1e-9
    assert predictor.bundle.domain.fitted["validation_reviews"] == len(validation)


def test_the_domain_files_are_signed_by_the_manifest_and_checked_on_load(trained_bundle, tmp_path):
    copy = shutil.copytree(trained_bundle, tmp_path / "copy")
    files = verify_bundle(copy)["files"]
    assert {"domain.json", "domain.safetensors"} <= set(files)
    (copy / DOMAIN_JSON).write_text(
        (copy / DOMAIN_JSON).read_text().replace('"threshold"', '"threshold" ')
    )
    with pytest.raises(BundleError, match=r"domain\.json does not match its checksum"):
        load_bundle(copy)


def test_a_bundle_without_a_domain_model_answers_with_none_and_critic_domain_fits_one(
    trained_bundle, tmp_path
):
    copy = shutil.copytree(trained_bundle, tmp_path / "old")
    manifest = json.loads((copy / MANIFEST).read_text())
    for name in ("domain.json", "domain.safetensors"):
        manifest["files"].pop(name)
        (copy / name).unlink()
    (copy / MANIFEST).write_text(json.dumps(manifest))
    old = Predictor.load(copy)
    assert not old.has_domain and old.predict("Fine.")["domain"] is None
    said = []
    domain = fit_bundle_domain(copy, log=said.append)
    assert said and "validation reviews typical" in said[0]
    assert (
        Predictor.load(copy).predict("Fine.")["domain"]
        == Predictor.load(trained_bundle).predict("Fine.")["domain"]
    )
    assert domain.fitted["train_reviews"] > 0


def test_fitting_again_replaces_the_domain_model_and_keeps_the_bundle_loadable(
    nbsvm_bundle, tmp_path
):
    copy = shutil.copytree(nbsvm_bundle, tmp_path / "nbsvm")
    before = load_bundle(copy).domain
    attach_domain(copy, fit_domain((("x", UP),), np.arange(10.0).reshape(-1, 1)))
    assert load_bundle(copy).domain.features == ("x",)
    fit_bundle_domain(copy, log=lambda _: None)
    again = load_bundle(copy).domain
    assert again.features == before.features
    assert np.allclose(again.center, before.center)


def test_an_ensemble_whose_member_has_no_domain_model_is_refused_in_one_line(
    ensemble_bundle, tmp_path
):
    copy = shutil.copytree(ensemble_bundle, tmp_path / "ensemble")
    member = next((copy / "members").iterdir())
    # The member's copy as it was before domain models: its manifest without them, and the
    # ensemble's manifest signing that one.
    member_manifest = json.loads((member / MANIFEST).read_text())
    member_manifest["files"].pop("domain.json")
    member_manifest["files"].pop("domain.safetensors", None)
    (member / MANIFEST).write_text(json.dumps(member_manifest))
    manifest = json.loads((copy / MANIFEST).read_text())
    for name in list(manifest["files"]):
        if name.startswith(f"members/{member.name}/domain"):
            manifest["files"].pop(name)
    manifest["files"][f"members/{member.name}/{MANIFEST}"] = sha256_file(member / MANIFEST)
    (copy / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CriticError, match="have no domain model"):
        fit_bundle_domain(copy, log=lambda _: None)


def test_onnx_runtime_gives_the_same_domain_scores_as_pytorch(trained_bundle):
    pytest.importorskip("onnxruntime")
    reviews = ["A wonderful film.", GIBBERISH, "Dull and long, the plot a mess. " * 20]
    with_torch = Predictor.load(trained_bundle).assess(reviews)
    with_onnx = Predictor.load(trained_bundle, backend="onnx").assess(reviews)
    assert np.allclose(with_torch[0], with_onnx[0], atol=1e-5)
    assert np.allclose(with_torch[1], with_onnx[1], rtol=1e-4, atol=1e-4)
