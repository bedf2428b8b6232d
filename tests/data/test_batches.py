import numpy as np

from critic.data.batches import BucketedBatches, EncodedSplit, pad_batch


def make_split(count=500, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 400, size=count)
    encoded = [np.full(length, 2 + i % 7, dtype=np.int32) for i, length in enumerate(lengths)]
    return EncodedSplit.from_lists(encoded, rng.integers(0, 2, size=count), np.zeros(count))


def test_every_review_appears_once_per_epoch():
    split = make_split()
    batches = BucketedBatches(split, 32, 1000, pool_batches=4, seed=1)
    seen = np.concatenate([batch.indices for batch in batches])
    assert sorted(seen.tolist()) == list(range(len(split)))


def test_bucketing_computes_much_less_padding_than_random_batches():
    split = make_split()
    batches = BucketedBatches(split, 32, 1000, pool_batches=8, seed=1)
    padded = sum(batch.token_ids.numel() for batch in batches)
    real = int(split.lengths.sum())
    rng = np.random.default_rng(0)
    order = rng.permutation(len(split))
    random_padded = sum(
        split.lengths[order[i : i + 32]].max() * len(order[i : i + 32])
        for i in range(0, len(split), 32)
    )
    assert padded < 1.15 * real
    assert random_padded > 1.5 * real


def test_batches_are_the_same_for_the_same_epoch_and_change_between_epochs():
    split = make_split()
    batches = BucketedBatches(split, 32, 1000, seed=7)
    batches.set_epoch(1)
    first = [b.tolist() for b in batches.batch_indices()]
    assert first == [b.tolist() for b in batches.batch_indices()]
    batches.set_epoch(2)
    assert first != [b.tolist() for b in batches.batch_indices()]


def test_reviews_are_cut_at_the_maximum_length_and_padded_with_zero():
    token_ids, lengths = pad_batch([np.array([5, 6, 7, 8]), np.array([9])], max_length=3)
    assert token_ids.tolist() == [[5, 6, 7], [9, 0, 0]]
    assert lengths.tolist() == [3, 1]


def test_evaluation_batches_are_sorted_longest_first():
    split = make_split()
    batches = list(BucketedBatches(split, 50, 1000, shuffle=False))
    maxima = [int(batch.lengths.max()) for batch in batches]
    assert maxima == sorted(maxima, reverse=True)
    assert batches[0].labels.dtype.is_floating_point
