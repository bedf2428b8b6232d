import pytest

from critic.predictor import EmptyReviewError, Predictor, rating_from_probability


@pytest.fixture(scope="module")
def predictor(trained_bundle):
    return Predictor.load(trained_bundle)


def test_one_review_gives_one_answer_and_a_list_gives_a_list(predictor):
    one = predictor.predict("What a great film!")
    many = predictor.predict(["What a great film!", "Dreadful."])
    assert isinstance(one, dict) and isinstance(many, list) and len(many) == 2
    assert one == many[0]
    assert set(one) == {"label", "probability", "rating", "tokens"}


def test_the_label_follows_the_probability_and_the_rating_agrees(predictor):
    for result in predictor.predict(["Great!", "Awful!", "It was a film.", "I did not hate it"]):
        assert 0.0 <= result["probability"] <= 1.0
        assert result["label"] == ("positive" if result["probability"] >= 0.5 else "negative")
        assert (result["rating"] >= 6) == (result["label"] == "positive")


@pytest.mark.parametrize(
    ("probability", "rating"), [(0.0, 1), (0.05, 1), (0.4999, 5), (0.5, 6), (0.95, 10), (1.0, 10)]
)
def test_the_rating_spreads_the_probability_over_one_to_ten(probability, rating):
    assert rating_from_probability(probability) == rating


def test_token_counts_and_cutting_are_reported(predictor):
    max_length = predictor.max_length
    short = predictor.predict("good film")
    long = predictor.predict("good " * (max_length + 10))
    assert short["tokens"] == {"count": 2, "cut": False}
    assert long["tokens"] == {"count": max_length, "cut": True}


@pytest.mark.parametrize("review", ["", "   ", "\n\t"])
def test_an_empty_review_is_an_error_not_a_guess(predictor, review):
    with pytest.raises(EmptyReviewError, match="empty"):
        predictor.predict(review)


def test_a_review_of_punctuation_only_still_gets_an_answer(predictor):
    assert predictor.predict("...")["tokens"]["count"] == 0


def test_predictions_do_not_depend_on_the_other_reviews_in_the_request(predictor):
    alone = predictor.predict("An honest, moving story.")["probability"]
    together = predictor.predict(["x " * 300, "An honest, moving story.", "ok"])[1]["probability"]
    assert alone == pytest.approx(together, abs=1e-6)
