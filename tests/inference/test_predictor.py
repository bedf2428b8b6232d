import numpy as np
import pytest

from critic.data.text import tokenize
from critic.inference.predictor import (
    EmptyReviewError,
    ModelOutputError,
    Predictor,
    rating_from_probability,
)


@pytest.fixture(scope="module", params=["trained_bundle", "nbsvm_bundle", "ensemble_bundle"])
def predictor(request):
    """Every kind of bundle answers the same way: a neural model, nbsvm, an ensemble."""
    return Predictor.load(request.getfixturevalue(request.param))


def test_one_review_gives_one_answer_and_a_list_gives_a_list(predictor):
    one = predictor.predict("What a great film!")
    many = predictor.predict(["What a great film!", "Dreadful."])
    assert isinstance(one, dict) and isinstance(many, list) and len(many) == 2
    assert one == many[0]
    assert set(one) == {"label", "probability", "score", "rating", "tokens", "domain"}


@pytest.mark.parametrize("method", ["predict_logits", "predict_proba", "predict_scores"])
def test_the_number_methods_answer_one_text_with_one_number_and_a_list_with_an_array(
    predictor, method
):
    answer = getattr(predictor, method)
    review = "What a great film!"
    one = answer(review)
    many = answer([review, "Dreadful."])
    # One text is one review, not one review per character.
    assert isinstance(one, float)
    assert isinstance(many, np.ndarray) and many.shape == (2,)
    assert one == many[0]
    assert answer((review,)).shape == (1,)  # a tuple is many, as a list is
    expected = {
        "predict_proba": predictor.predict(review)["probability"],
        "predict_scores": predictor.predict(review)["score"],
        "predict_logits": predictor.predict_logits([review])[0],
    }[method]
    assert one == pytest.approx(expected)


def test_the_label_follows_the_probability_and_the_score_and_rating_agree(predictor):
    for result in predictor.predict(["Great!", "Awful!", "It was a film.", "I did not hate it"]):
        assert 0.0 <= result["probability"] <= 1.0 and 0.0 <= result["score"] <= 1.0
        assert result["label"] == ("positive" if result["probability"] >= 0.5 else "negative")
        assert (result["score"] >= 0.5) == (result["label"] == "positive")
        assert (result["rating"] >= 6) == (result["label"] == "positive")
        assert result["rating"] == rating_from_probability(result["score"])


def test_the_score_is_the_probability_at_the_bundle_temperature(predictor):
    from critic.evaluation.calibration import sigmoid

    reviews = ["A triumph.", "Boring and long.", "fine"]
    logits = predictor.predict_logits(reviews)
    temperature = predictor.calibration.temperature
    assert temperature != 1.0  # fitted, not the identity
    for result, logit in zip(predictor.predict(reviews), logits, strict=True):
        assert result["probability"] == pytest.approx(float(sigmoid(logit)))
        assert result["score"] == pytest.approx(float(sigmoid(logit / temperature)))
    assert predictor.predict_scores(reviews) == pytest.approx(
        [r["score"] for r in predictor.predict(reviews)]
    )


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


def test_a_review_of_punctuation_only_gets_no_verdict(predictor):
    # It was once answered from one unknown token: a verdict on nothing.
    for review in ("...", "?!"):
        with pytest.raises(EmptyReviewError, match="no words to judge"):
            predictor.predict(review)


def test_predictions_do_not_depend_on_the_other_reviews_in_the_request(predictor):
    alone = predictor.predict("An honest, moving story.")["probability"]
    together = predictor.predict(["x " * 300, "An honest, moving story.", "ok"])[1]["probability"]
    assert alone == pytest.approx(together, abs=1e-6)


def test_explain_gives_one_weight_per_token_read_scaled_to_one(predictor):
    review = "I did not like it. The acting was terrible, but the music was wonderful!"
    result = predictor.predict(review, explain=True)
    assert [w["word"] for w in result["words"]] == tokenize(review)
    weights = [w["weight"] for w in result["words"]]
    assert max(abs(w) for w in weights) == pytest.approx(1.0)
    assert all(-1.0 <= w <= 1.0 for w in weights)
    assert "words" not in predictor.predict(review)


def test_word_weights_do_not_depend_on_the_other_reviews_and_leave_no_gradients(predictor):
    review = "A clever, funny and warm film."
    alone = predictor.predict(review, explain=True)["words"]
    together = predictor.predict(["x " * 50, review, "Bad."], explain=True)[1]["words"]
    assert [w["word"] for w in alone] == [w["word"] for w in together]
    for a, b in zip(alone, together, strict=True):
        assert a["weight"] == pytest.approx(b["weight"], abs=1e-3)
    if predictor.kind == "neural":
        assert all(p.grad is None for p in predictor.model.parameters())
    assert predictor.predict(review, explain=True)["probability"] == pytest.approx(
        predictor.predict(review)["probability"]
    )


def test_nbsvm_word_weights_are_the_coefficients_shares(nbsvm_bundle):
    predictor = Predictor.load(nbsvm_bundle)
    review = "A wonderful film, but the ending was awful and dull."
    words = predictor.predict(review, explain=True)["words"]
    shares = predictor.model.token_contributions([w["word"] for w in words])
    peak = np.abs(shares).max()
    assert [w["weight"] for w in words] == pytest.approx(list(shares / peak), abs=1e-4)


def test_an_ensemble_answers_with_its_members_weighted_log_odds(ensemble_bundle):
    ensemble = Predictor.load(ensemble_bundle)
    reviews = ["A wonderful, moving film!", "Not good. Boring and far too long.", "meh"]
    members = ensemble.model.members
    logits = [Predictor(m).predict_logits(reviews) / m.calibration.temperature for m in members]
    short = ensemble.model.short  # a second set of weights for short reviews, mixed by length
    share = short.share(np.array([len(tokenize(review)) for review in reviews]))
    expected = sum(
        ((1 - share) * weight + share * short_weight) * member_logits
        for member_logits, weight, short_weight in zip(
            logits, ensemble.model.weights, short.weights, strict=True
        )
    ) + ((1 - share) * ensemble.model.bias + share * short.bias)
    assert ensemble.predict_logits(reviews) == pytest.approx(expected)
    assert ensemble.max_length == max(Predictor(m).max_length for m in members)


def test_ensemble_word_weights_are_the_members_weighted(ensemble_bundle):
    ensemble = Predictor.load(ensemble_bundle)
    review = "A clever, funny and warm film."
    combined = np.zeros(len(tokenize(review)))
    short = ensemble.model.short
    share = short.share(np.array([len(combined)]))[0]
    for member, weight, short_weight in zip(
        ensemble.model.members, ensemble.model.weights, short.weights, strict=True
    ):
        words = Predictor(member).predict(review, explain=True)["words"]
        weight = (1 - share) * weight + share * short_weight  # a short review's own mix
        combined[: len(words)] += weight * np.array([w["weight"] for w in words])
    got = [w["weight"] for w in ensemble.predict(review, explain=True)["words"]]
    assert got == pytest.approx(list(combined / np.abs(combined).max()), abs=2e-3)


@pytest.mark.parametrize("review", ["😀👍", "<p><br/></p>", "!!! ???", "\x01\x02"])
def test_a_review_with_no_words_gets_no_verdict(trained_bundle, review):
    predictor = Predictor.load(trained_bundle)
    with pytest.raises(EmptyReviewError, match="no words to judge"):
        predictor.predict(review)
    with pytest.raises(EmptyReviewError, match="no words to judge"):
        predictor.predict(["A fine film.", review])


def test_a_model_that_scores_nan_gives_no_answer_rather_than_a_confident_negative(
    nbsvm_bundle, tmp_path
):
    from critic.inference.bundle import load_bundle, save_bundle

    bundle = load_bundle(nbsvm_bundle)  # as a training run that diverged on a word leaves it
    for index, ngram in enumerate(bundle.model.vocabulary):
        if "terrible" in ngram.split():
            bundle.model.coefficients[index] = np.nan
    saved = save_bundle(tmp_path / "nan", bundle.config, None, bundle.model, bundle.metrics)
    predictor = Predictor.load(saved)
    assert np.isfinite(predictor.predict("A wonderful film.")["probability"])
    for ask in (predictor.predict, predictor.predict_proba, predictor.predict_scores):
        with pytest.raises(ModelOutputError, match="scored 1 of 2 reviews as nan \\(review 2"):
            ask(["A wonderful film.", "Terrible acting."])
