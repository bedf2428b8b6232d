import json

import numpy as np
import pytest

from critic.errors import BundleError
from critic.evaluation.calibration import (
    RATING_FROM_PROBABILITY,
    RATING_FROM_STARS,
    Calibration,
    fit_calibration,
    fit_temperature,
    rating_from_probability,
    sigmoid,
)


def overconfident_sample(temperature: float, count: int = 20000, seed: int = 0):
    """Log-odds whose true probability is sigmoid(logit / temperature)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 4.0, count)
    labels = (rng.random(count) < sigmoid(logits / temperature)).astype(int)
    return logits, labels


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_the_fitted_temperature_is_the_one_that_made_the_labels(temperature):
    logits, labels = overconfident_sample(temperature)
    assert fit_temperature(logits, labels) == pytest.approx(temperature, rel=0.08)


def test_the_sigmoid_is_exact_and_quiet_at_extreme_log_odds():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        values = sigmoid(np.array([-1000.0, -5.0, 0.0, 5.0, 1000.0]))
    assert values[0] == 0.0 and values[-1] == 1.0 and values[2] == 0.5
    assert values[1] == pytest.approx(1 / (1 + np.exp(5.0)))


def test_calibration_never_changes_a_label():
    logits, labels = overconfident_sample(3.0, count=2000)
    calibration = fit_calibration(logits, labels)
    assert ((calibration.scores(logits) >= 0.5) == (logits >= 0)).all()
    assert calibration.rating_source == RATING_FROM_PROBABILITY


@pytest.mark.parametrize(
    ("probability", "rating"), [(0.0, 1), (0.05, 1), (0.4999, 5), (0.5, 6), (0.95, 10), (1.0, 10)]
)
def test_the_rating_spreads_the_probability_over_one_to_ten(probability, rating):
    assert rating_from_probability(probability) == rating


def stars_for(logits: np.ndarray, seed: int = 1) -> np.ndarray:
    """aclImdb-like stars: 1-4 for negatives, 7-10 for positives, rising with the log-odds."""
    rng = np.random.default_rng(seed)
    noisy = logits + rng.normal(0, 1.0, len(logits))
    return np.where(
        noisy >= 0, np.clip(7 + noisy // 2, 7, 10), np.clip(4 + noisy // 2, 1, 4)
    ).astype(int)


def test_ratings_learned_from_stars_rise_with_the_log_odds_and_agree_with_the_label():
    logits, labels = overconfident_sample(2.0, count=3000)
    calibration = fit_calibration(logits, labels, stars_for(logits))
    assert calibration.rating_source == RATING_FROM_STARS
    grid = np.linspace(-20, 20, 401)
    ratings = calibration.ratings(grid)
    assert (np.diff(ratings) >= 0).all()
    assert ratings.min() >= 1 and ratings.max() <= 10
    assert ((ratings >= 6) == (grid >= 0)).all()
    assert ratings[0] <= 2 and ratings[-1] >= 9
    true = stars_for(logits)
    assert np.abs(calibration.ratings(logits) - true).mean() < 1.5


def test_reviews_without_stars_keep_the_rating_from_the_probability():
    logits, labels = overconfident_sample(2.0, count=500)
    some_unrated = stars_for(logits)
    some_unrated[3] = 0
    assert fit_calibration(logits, labels, some_unrated).rating_source == RATING_FROM_PROBABILITY


def test_a_calibration_round_trips_through_json():
    logits, labels = overconfident_sample(2.0, count=1000)
    calibration = fit_calibration(logits, labels, stars_for(logits))
    again = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert again == calibration
    assert (again.ratings(logits) == calibration.ratings(logits)).all()


@pytest.mark.parametrize(
    "payload",
    [
        {"temperature": -1},
        {"temperature": "hot"},
        {},
        {"temperature": 1.0, "rating": {"source": "vibes"}},
        {"temperature": 1.0, "rating": {"source": "stars", "logits": [0.0], "values": []}},
    ],
)
def test_an_invalid_calibration_is_a_bundle_error(payload):
    with pytest.raises(BundleError, match="calibration"):
        Calibration.from_dict(payload)
