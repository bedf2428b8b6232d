"""Crops in training: a share of the reviews read as short windows of their own words."""

import numpy as np
import pytest

from critic.config import TrainConfig
from critic.data.batches import BucketedBatches, Crops, EncodedSplit
from critic.data.vocab import PAD_ID
from critic.errors import CriticError
from critic.training import neural
from critic.training.train import train
from support.data import small_nbsvm_config, small_run_config


def numbered_split(count=400, seed=0):
    """Reviews of 3-300 tokens whose ids say where they stand: review i's token j is
    1000 * i + j + 2, so a window can be traced back to its review and place."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 300, size=count)
    encoded = [1000 * i + np.arange(n) + 2 for i, n in enumerate(lengths)]
    return EncodedSplit.from_lists(encoded, rng.integers(0, 2, size=count), np.zeros(count))


def windows(batches):
    """(review, first position, length) of every row the batches hold."""
    found = []
    for batch in batches:
        for row, index in enumerate(batch.indices):
            ids = batch.token_ids[row, : int(batch.lengths[row])].numpy()
            assert (batch.token_ids[row, int(batch.lengths[row]) :] == PAD_ID).all()
            assert (ids // 1000 == index).all()  # the review's own tokens, nobody else's
            assert (np.diff(ids) == 1).all()  # consecutive, in order
            found.append((int(index), int(ids[0] % 1000 - 2), len(ids)))
    return found


@pytest.mark.parametrize("share", [0.3, 0.6])
def test_about_the_asked_share_of_reviews_is_read_as_a_window_of_8_to_30_tokens(share):
    split = numbered_split()
    batches = BucketedBatches(split, 32, 1000, seed=3, crops=Crops(share))
    batches.set_epoch(1)
    seen = windows(batches)
    assert sorted(index for index, _, _ in seen) == list(range(len(split)))  # each once
    cut = [(i, start, n) for i, start, n in seen if n < split.lengths[i]]
    assert all(8 <= n <= 30 and start + n <= split.lengths[i] for i, start, n in cut)
    # Reviews of 30 tokens or fewer may be left whole by a draw; the rest are cut at the share.
    long = split.lengths > 30
    assert len(cut) / long.sum() == pytest.approx(share, abs=0.07)
    assert len({start for _, start, _ in cut}) > len(cut) / 4  # from anywhere, not the start
    labels = np.concatenate([b.labels.numpy() for b in batches])
    order = np.concatenate([b.indices for b in batches])
    assert (labels == split.labels[order]).all()  # a window keeps its review's label


def test_windows_are_the_same_for_a_seed_and_epoch_new_each_epoch_and_bucketed_by_length():
    split = numbered_split()
    batches = BucketedBatches(split, 32, 1000, seed=3, crops=Crops(0.5))
    batches.set_epoch(1)
    first = windows(batches)
    assert windows(batches) == first
    again = BucketedBatches(split, 32, 1000, seed=3, crops=Crops(0.5))
    again.set_epoch(1)  # a resumed run: the same epoch cuts the same windows
    assert windows(again) == first
    batches.set_epoch(2)
    assert sorted(windows(batches)) != sorted(first)
    # Bucketed by the length read, not the review's: little padding with crops too (bucketed
    # by the reviews' lengths these windows would be half padding).
    batches.set_epoch(1)
    real = sum(int(b.lengths.sum()) for b in batches)
    padded = sum(b.token_ids.numel() for b in batches)
    assert real / padded > 0.8


def test_no_share_and_evaluation_batches_read_every_review_whole():
    split = numbered_split()
    assert BucketedBatches(split, 32, 1000, crops=Crops(0.0)).crops is None
    plain = BucketedBatches(split, 32, 1000, seed=3)
    plain.set_epoch(1)
    assert all(start == 0 and n == split.lengths[i] for i, start, n in windows(plain))


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_share_outside_zero_to_one_is_refused_with_a_clear_message(share):
    with pytest.raises(CriticError, match=rf"^crop_share must lie in \[0, 1\], got {share}$"):
        TrainConfig(crop_share=share)


def test_nbsvm_refuses_crops_in_one_line_before_reading_anything(tmp_path):
    config = small_nbsvm_config()
    config = config.replace(train=config.train.replace(crop_share=0.3))
    with pytest.raises(CriticError, match=r"^--crop-share: nbsvm is fitted in one go"):
        train(config, tmp_path / "out", cache_dir=tmp_path / "cache", log=lambda _: None)
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_training_reads_crops_and_validation_reads_reviews_whole(tmp_path, cache_dir, monkeypatch):
    seen = {True: [], False: []}  # model.training -> lengths of the rows read
    real_build_model = neural.build_model

    def recording_model(config):
        model = real_build_model(config)

        def record(module, inputs, output):
            seen[module.training].extend((inputs[0] != PAD_ID).sum(1).tolist())

        model.embedding.register_forward_hook(record)
        return model

    monkeypatch.setattr(neural, "build_model", recording_model)
    lines = []
    config = small_run_config(crop_share=0.5)
    train(config, tmp_path / "run", cache_dir=cache_dir, progress=False, log=lines.append)
    assert "crops: 50% of the training reviews read as 8-30 consecutive words each epoch" in lines
    trained, evaluated = np.array(seen[True]), np.array(seen[False])
    # The few hundred reviews are nearly all longer than 30 tokens: about half are read short.
    assert 0.35 < np.mean(trained <= 30) < 0.65
    assert np.mean(evaluated <= 30) < 0.05
