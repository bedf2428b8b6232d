"""Short crops of reviews: whole sentences, about a snippet's length, labelled as the review."""

import numpy as np

from critic.data.crops import CROP_WORDS, sentences, short_crops
from critic.data.sources import Reviews

REVIEW = (
    "I went in expecting little. The first hour drags badly and the dialogue is clumsy.<br /><br />"
    "But the last act is wonderful and the lead actress is superb! Would I watch it again? "
    "Yes, without a doubt. Ok."
)


def test_a_review_splits_into_its_sentences_at_stops_and_line_breaks():
    assert sentences(REVIEW) == [
        "I went in expecting little.",
        "The first hour drags badly and the dialogue is clumsy.",
        "But the last act is wonderful and the lead actress is superb!",
        "Would I watch it again?",
        "Yes, without a doubt.",
    ]  # "Ok." is too short to stand alone


def test_crops_are_runs_of_whole_sentences_labelled_as_their_review_and_repeatable():
    reviews = Reviews(
        [REVIEW, "Awful. Truly. Bad.", "A dull, long and pointless film. " * 20], [1, 0, 0]
    )
    crops = short_crops(reviews, per_review=3, seed=7)
    # The second review has no sentence of four words: it gives no crop.
    assert len(crops) == 6 and crops.labels.tolist() == [1, 1, 1, 0, 0, 0]
    for text in crops.texts[:3]:
        assert text in REVIEW.replace("<br /><br />", " ")
    for text in crops.texts:
        assert len(text.split()) <= CROP_WORDS[1] + 11  # the last sentence may run over
    for text in crops.texts[3:]:
        assert CROP_WORDS[0] <= len(text.split())
    again = short_crops(reviews, per_review=3, seed=7)
    assert again.texts == crops.texts and np.array_equal(again.labels, crops.labels)
    assert short_crops(reviews, per_review=3, seed=8).texts != crops.texts
