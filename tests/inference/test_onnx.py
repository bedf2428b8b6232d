"""The ONNX Runtime backend answers as eager PyTorch does, or refuses in one line."""

import io
import json
import re
import time

import numpy as np
import pytest
import torch

from critic.config import ModelConfig
from critic.errors import CriticError
from critic.inference.onnx import (
    EXPORTABLE_FOR_AUTO,
    UNEXPORTABLE,
    MeasuredScorer,
    OnnxExportError,
    export_bundle,
    export_model,
    new_session,
    run_session,
)
from critic.inference.predictor import Predictor
from critic.inference.scoring import NeuralScorer
from critic.models import NEURAL, build_model, model_names, run_config
from critic.models.encoder import MINILM
from support.bundles import SMALL_BUNDLE_TEXTS, small_bundle
from support.data import random_batch

# onnxruntime is the optional extra critic[onnx] (in dev too); critic.inference.onnx imports it
# only when a session is made.
pytest.importorskip("onnxruntime")

EXPORTABLE = [name for name in model_names(NEURAL) if name not in UNEXPORTABLE]
# Each exportable architecture, and its settings that change the exported graph.
VARIANTS = [
    *[(name, {}) for name in EXPORTABLE],
    ("lstm", {"num_layers": 2}),
    ("lstm", {"pooling": "max"}),
    ("gru", {"pooling": "mean", "bidirectional": True}),
    ("attention", {"cell": "lstm"}),
]
TEXTS = SMALL_BUNDLE_TEXTS  # reviews in the words small_bundle's vocabulary knows


def tiny_model(name: str, **changes) -> torch.nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(name=name, vocab_size=50, embedding_dim=8, hidden_dim=6, **changes)
    return build_model(config).eval()


def onnx_logits(model: torch.nn.Module, name: str, token_ids, lengths) -> np.ndarray:
    buffer = io.BytesIO()
    export_model(model, name, buffer)
    return run_session(new_session(buffer.getvalue()), token_ids.numpy(), lengths.numpy())


def test_the_exportable_architectures_are_the_recurrent_and_attention_ones():
    assert set(EXPORTABLE) == {"lstm", "gru", "bilstm", "attention"}


@pytest.mark.parametrize(("name", "changes"), VARIANTS)
def test_onnx_logits_equal_pytorch_for_reviews_of_different_lengths_in_one_batch(name, changes):
    model = tiny_model(name, **changes)
    for batch, steps, seed in ((1, 1, 0), (1, 40, 1), (6, 12, 2), (64, 90, 3)):
        token_ids, lengths = random_batch(batch=batch, steps=steps, seed=seed)
        with torch.no_grad():
            expected = model(token_ids, lengths).numpy()
        got = onnx_logits(model, name, token_ids, lengths)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("name", "changes"), VARIANTS)
def test_padding_after_a_review_does_not_change_its_onnx_logit(name, changes):
    model = tiny_model(name, **changes)
    token_ids, lengths = random_batch()
    buffer = io.BytesIO()
    export_model(model, name, buffer)
    session = new_session(buffer.getvalue())
    in_batch = run_session(session, token_ids.numpy(), lengths.numpy())
    for row in range(len(lengths)):
        alone = run_session(
            session,
            token_ids[row : row + 1, : lengths[row]].numpy(),
            lengths[row : row + 1].numpy(),
        )
        assert abs(alone[0] - in_batch[row]) < 1e-5


@pytest.mark.parametrize("name", sorted(UNEXPORTABLE))
def test_a_model_that_cannot_be_exported_refuses_in_one_line_naming_it(name):
    if name == MINILM:  # its weights fix its size
        model = build_model(run_config(MINILM).model.replace(vocab_size=50))
    else:
        model = tiny_model(name, ngram_buckets=97)
    with pytest.raises(OnnxExportError, match=f"the {name} model cannot be served with") as error:
        export_model(model, name, io.BytesIO())
    assert "\n" not in str(error.value)


def assert_same_predictions(torch_predictor, onnx_predictor, texts):
    expected, got = torch_predictor.predict(texts), onnx_predictor.predict(texts)
    for want, have in zip(expected, got, strict=True):
        assert have["label"] == want["label"]
        assert have["rating"] == want["rating"]
        assert have["tokens"] == want["tokens"]
        assert have["probability"] == pytest.approx(want["probability"], abs=1e-5)
        assert have["score"] == pytest.approx(want["score"], abs=1e-5)
    np.testing.assert_allclose(
        onnx_predictor.predict_logits(texts), torch_predictor.predict_logits(texts), atol=1e-5
    )


@pytest.mark.parametrize("name", EXPORTABLE)
def test_a_predictor_with_the_onnx_backend_answers_as_the_torch_one(tmp_path, name):
    bundle = small_bundle(tmp_path, name)
    assert_same_predictions(Predictor.load(bundle), Predictor.load(bundle, backend="onnx"), TEXTS)


def test_the_trained_bundle_answers_the_same_with_onnx_and_its_words_still_explain(
    trained_bundle,
):
    eager, onnx = Predictor.load(trained_bundle), Predictor.load(trained_bundle, backend="onnx")
    assert onnx.backend == "onnx"
    assert_same_predictions(eager, onnx, TEXTS)
    assert (
        onnx.predict(TEXTS[0], explain=True)["words"]
        == eager.predict(TEXTS[0], explain=True)["words"]
    )


def test_an_ensemble_runs_its_neural_members_with_the_onnx_backend(ensemble_bundle):
    assert_same_predictions(
        Predictor.load(ensemble_bundle), Predictor.load(ensemble_bundle, backend="onnx"), TEXTS
    )


def test_loading_with_onnx_leaves_the_bundle_folder_as_it_was(tmp_path):
    bundle = small_bundle(tmp_path, "gru")
    before = sorted(path.name for path in bundle.iterdir())
    Predictor.load(bundle, backend="onnx")
    assert sorted(path.name for path in bundle.iterdir()) == before


def test_a_bundle_of_an_unexportable_model_refuses_to_load_with_onnx(tmp_path):
    bundle = small_bundle(tmp_path, "cnn-lstm")
    with pytest.raises(OnnxExportError, match="cnn-lstm model cannot be served"):
        Predictor.load(bundle, backend="onnx")
    assert Predictor.load(bundle).predict(TEXTS[0])["label"] in ("positive", "negative")


def test_an_unknown_backend_is_refused_with_the_valid_ones(tmp_path):
    with pytest.raises(
        CriticError, match="unknown backend 'tvm'; valid backends: torch, onnx, auto"
    ):
        Predictor.load(small_bundle(tmp_path, "gru"), backend="tvm")


def test_export_bundle_writes_a_model_onnx_that_onnxruntime_loads(tmp_path):
    bundle = Predictor.load(small_bundle(tmp_path, "attention")).bundle
    path = export_bundle(bundle, tmp_path / "model.onnx")
    token_ids, lengths = random_batch(vocab_size=len(bundle.vocab))
    with torch.no_grad():
        expected = bundle.model(token_ids, lengths).numpy()
    got = run_session(new_session(path.read_bytes()), token_ids.numpy(), lengths.numpy())
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["gru", "attention", "bilstm", "cnn-lstm"])
def test_the_auto_backend_measures_both_backends_where_onnx_runs_the_model(tmp_path, name):
    predictor = Predictor.load(small_bundle(tmp_path, name), backend="auto")
    expected = MeasuredScorer if name in EXPORTABLE_FOR_AUTO else NeuralScorer
    assert type(predictor.scorer) is expected
    if expected is MeasuredScorer:
        timings = predictor.scorer.timings
        assert sorted(timings) == [1, 8, 32, 64]
        assert all(0 < seconds < 1 for pair in timings.values() for seconds in pair)
        # Measured now, or read from this machine's cache of an earlier measurement.
        assert re.search(
            r"measured here( at [\d-]+ [\d:]+)?, PyTorch vs ONNX Runtime per batch: 1: ",
            predictor.backend_choice(),
        )


ONNX_FASTER = {1: (2.0, 1.0), 8: (2.0, 1.0), 32: (2.0, 1.0), 64: (2.0, 1.0)}
TORCH_FASTER = {size: (1.0, 2.0) for size in ONNX_FASTER}
MIXED = {1: (2.0, 1.0), 8: (2.0, 1.0), 32: (1.0, 2.0), 64: (1.0, 2.0)}


@pytest.mark.parametrize("name", sorted(EXPORTABLE_FOR_AUTO))
@pytest.mark.parametrize(
    "timings", [ONNX_FASTER, TORCH_FASTER, MIXED], ids=["onnx", "torch", "mixed"]
)
def test_the_measured_backend_answers_as_pytorch_whichever_runs_each_batch(tmp_path, name, timings):
    bundle = Predictor.load(small_bundle(tmp_path, name)).bundle
    # Batches of 1 to 40 reviews of different lengths: each size goes where the timings say.
    texts = [" ".join([TEXTS[i % len(TEXTS)]] * (1 + i % 5)) for i in range(40)]
    tokenized = [text.split() for text in texts]
    expected = NeuralScorer(bundle, batch_size=64).logits(tokenized)
    for batch_size in (1, 8, 40):
        measured = MeasuredScorer(bundle, batch_size, timings=timings)
        np.testing.assert_allclose(measured.logits(tokenized), expected, rtol=1e-5, atol=1e-5)


def test_the_timings_are_kept_per_shape_and_machine_for_a_day(tmp_path):
    bundle = Predictor.load(small_bundle(tmp_path, "lstm")).bundle
    cache = tmp_path / "cache"
    first = MeasuredScorer(bundle, cache_dir=cache)
    assert first.measured_at is None  # measured now
    (kept,) = (cache / "backends").iterdir()
    second = MeasuredScorer(bundle, cache_dir=cache)  # another worker, or a restart
    assert second.timings == first.timings and second.measured_at is not None
    assert "measured here at " in second.choice()
    record = json.loads(kept.read_text())
    record["measured_at"] = time.time() - 2 * 24 * 3600  # two days old: measured again
    kept.write_text(json.dumps(record))
    assert MeasuredScorer(bundle, cache_dir=cache).measured_at is None
    kept.write_text("{not json")  # a damaged file: measured again, and kept anew
    assert MeasuredScorer(bundle, cache_dir=cache).measured_at is None
    assert json.loads(kept.read_text())["timings"]


def test_a_batch_runs_where_the_nearest_measured_size_at_least_as_large_was_faster(tmp_path):
    bundle = Predictor.load(small_bundle(tmp_path, "lstm")).bundle
    measured = MeasuredScorer(bundle, timings=MIXED)
    assert [measured.uses_onnx(size) for size in (1, 2, 8, 9, 32, 64, 100)] == [
        True, True, True, False, False, False, False,
    ]  # fmt: skip
    assert measured.choice().startswith(
        "ONNX Runtime for batches of 1, 8 reviews, PyTorch for 32, 64 reviews (measured here"
    )
    assert "32: 1000.00 vs 2000.00 ms" in measured.choice()


def test_the_auto_backend_leaves_an_nbsvm_ensemble_member_to_its_own_scorer(ensemble_bundle):
    members = Predictor.load(ensemble_bundle, backend="auto").scorer.members
    assert sorted(type(member).__name__ for member in members) == ["MeasuredScorer", "NBSVMScorer"]


def test_serving_an_unexportable_model_with_onnx_is_one_line_before_any_worker(
    tmp_path, capsys, nbsvm_bundle
):
    from critic.cli import main

    bundle = small_bundle(tmp_path, "ngrams", ngram_buckets=97)
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--variant", f"a={nbsvm_bundle}:0.5", "--variant", f"b={bundle}:0.5",
              "--backend", "onnx", "--port", "1"])  # fmt: skip
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("critic: error: the ngrams model cannot be served with --backend onnx")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
