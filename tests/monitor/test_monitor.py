"""critic monitor on real traffic: Rotten Tomatoes snippets (another domain) must be flagged as
drift, held-out IMDB reviews must not -- both captured by a real endpoint."""

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from fastapi.testclient import TestClient

from critic.apps.endpoint import create_app
from critic.data.prepare import load_splits
from critic.data.sources import load_embedded
from critic.data.split import stratified_sample
from critic.errors import CriticError
from critic.inference.bundle import save_training_result
from critic.inference.domain_fit import fit_bundle_domain
from critic.inference.predictor import Predictor
from critic.monitor.drift import MonitorError, monitor, psi, write_report
from critic.monitor.thresholds import DriftThresholds
from critic.serving.codec import encode_predictions
from critic.serving.settings import ServerSettings
from critic.serving.sidecar.capture import CaptureConfig, CaptureWriter, capture_files
from critic.serving.variants import VariantSpec
from critic.training.train import train
from support.cli import run_cli
from support.data import small_nbsvm_config

# Enough reviews that a PSI over deciles means something (about 20 a bin), few enough to
# train and score in seconds: the n-gram model on 2,000 embedded reviews (200 validation,
# 200 test).
MAX_REVIEWS = 2000
LIVE_REVIEWS = 200
WHEN = datetime(2026, 3, 14, 9, 30, tzinfo=timezone.utc)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def drift_bundle(tmp_path_factory, cache_dir):
    config = small_nbsvm_config()
    config = config.replace(data=config.data.replace(max_reviews=MAX_REVIEWS))
    out = tmp_path_factory.mktemp("drift") / "nbsvm"
    result = train(config, out, cache_dir=cache_dir, progress=False, log=lambda _: None)
    save_training_result(out, result)
    fit_bundle_domain(out, log=lambda _: None)  # as critic train does
    return out


@pytest.fixture(scope="module")
def held_out_imdb(drift_bundle):
    """The bundle's own test split: IMDB reviews it never saw, and not the baseline's."""
    config = Predictor.load(drift_bundle).bundle.config
    return load_splits(config.data)["test"].texts[:LIVE_REVIEWS]


@pytest.fixture(scope="module")
def rotten_tomatoes():
    return stratified_sample(load_embedded("rotten_tomatoes"), LIVE_REVIEWS, seed=0).texts


def capture_through_an_endpoint(bundle, reviews, folder, **settings):
    """Send ``reviews`` (ten a request) through a real endpoint with capture on."""
    app = create_app(
        [VariantSpec("champion", bundle)],
        ServerSettings(capture_dir=str(folder), feedback_db="off", **settings),
    )
    with TestClient(app) as client:
        for start in range(0, len(reviews), 10):
            response = client.post("/invocations", json=reviews[start : start + 10])
            assert response.status_code == 200
        client.app.state.endpoint.capture.flush()
    return folder


@pytest.fixture(scope="module")
def imdb_capture(drift_bundle, held_out_imdb, tmp_path_factory):
    return capture_through_an_endpoint(
        drift_bundle, held_out_imdb, tmp_path_factory.mktemp("imdb-capture")
    )


@pytest.fixture(scope="module")
def rotten_capture(drift_bundle, rotten_tomatoes, tmp_path_factory):
    return capture_through_an_endpoint(
        drift_bundle, rotten_tomatoes, tmp_path_factory.mktemp("rt-capture")
    )


def quiet(line):
    pass


def test_held_out_imdb_reviews_are_not_drift(imdb_capture, drift_bundle):
    report = monitor(imdb_capture, drift_bundle, log=quiet)
    assert report.overall["reviews"] == LIVE_REVIEWS
    assert report.overall["judged"] and not report.drift, report.overall["breaches"]
    assert report.overall["score"]["psi"] < 0.2
    assert report.overall["length"]["psi"] < 0.2
    assert report.baseline["split"] == "validation" and report.baseline["reviews"] == 200
    # About 5% of held-out movie reviews are unusual by construction, live as in the baseline.
    assert report.overall["unusual"]["share"] < 0.15
    assert report.baseline["unusual_share"] < 0.15


def test_rotten_tomatoes_snippets_are_drift(rotten_capture, drift_bundle):
    report = monitor(rotten_capture, drift_bundle, log=quiet)
    assert report.drift
    breaches = " ".join(report.overall["breaches"])
    # Snippets of a sentence or two against reviews of a few hundred words.
    assert "review length PSI" in breaches
    assert report.overall["length"]["median_words"] < 40
    assert report.overall["length"]["baseline_median_words"] > 100
    # Short texts give the model little to go on: its scores move too.
    assert "score PSI" in breaches
    # And the answers said so one by one: most snippets were unlike the model's reviews.
    assert "unusual reviews" in breaches
    assert report.overall["unusual"]["share"] > 0.5
    assert "DRIFT" in report.to_markdown()


def test_drift_is_followed_hour_by_hour(drift_bundle, held_out_imdb, rotten_tomatoes, tmp_path):
    """Two hours of IMDB traffic, then an hour of snippets: only the last hour drifts."""
    predictor = Predictor.load(drift_bundle)
    writer = CaptureWriter(CaptureConfig(tmp_path, "critic"))
    # Every other review: the split is ordered by label, and an hour of only negative reviews
    # is drift of its own (of the label share).
    hours = [held_out_imdb[0::2], held_out_imdb[1::2], rotten_tomatoes[:100]]
    for hour, reviews in enumerate(hours):
        for start in range(0, len(reviews), 10):
            chunk = reviews[start : start + 10]
            answer = encode_predictions(predictor.predict(chunk), "application/json")
            writer.offer("champion", json.dumps(chunk).encode(), "application/json", answer,
                         "application/json", None, chunk, WHEN + timedelta(hours=hour))  # fmt: skip
    writer.close()
    report = monitor(tmp_path, drift_bundle, log=quiet)
    assert [report.windows[h]["drift"] for h in sorted(report.windows)] == [False, False, True]
    assert list(report.windows) == ["2026-03-14T09", "2026-03-14T10", "2026-03-14T11"]
    written = write_report(report, tmp_path / "report")
    assert [path.name for path in written] == ["drift.md", "drift.json", "drift.png"]
    assert written[2].read_bytes().startswith(b"\x89PNG")
    saved = json.loads(written[1].read_text())
    assert saved["drift"] is True and len(saved["windows"]) == 3


def test_a_capture_without_review_text_is_still_judged_on_length_and_scores(
    drift_bundle, rotten_tomatoes, tmp_path
):
    capture_through_an_endpoint(drift_bundle, rotten_tomatoes, tmp_path, capture_text=False)
    assert all("omitted" in f.read_text() for f in capture_files(tmp_path))
    report = monitor(tmp_path, drift_bundle, log=quiet)
    assert report.drift and "unknown_words" not in report.overall
    assert "review length PSI" in " ".join(report.overall["breaches"])


def test_critic_monitor_exits_1_on_drift_and_0_without(
    rotten_capture, imdb_capture, drift_bundle, tmp_path
):
    drifted = run_cli(
        "monitor", rotten_capture, "--baseline", drift_bundle, "--out", tmp_path / "rt"
    )
    assert drifted.returncode == 1, drifted.stderr
    assert "Verdict: **DRIFT**" in drifted.stdout
    assert (tmp_path / "rt" / "drift.png").is_file()
    calm = run_cli("monitor", imdb_capture, "--baseline", drift_bundle)
    assert calm.returncode == 0, calm.stdout + calm.stderr
    assert "no drift past the thresholds" in calm.stdout
    # A threshold loose enough lets even the snippets pass; a bad one is one line.
    loose = run_cli(
        "monitor", rotten_capture, "--baseline", drift_bundle, "--psi", "100",
        "--ks-statistic", "0.99", "--label-share", "0.99", "--unknown-words", "0.99",
        "--unusual-share", "0.99",
    )  # fmt: skip
    assert loose.returncode == 0, loose.stdout + loose.stderr
    bad = run_cli("monitor", tmp_path / "nothing", "--baseline", drift_bundle)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "is not a folder of captured data" in bad.stderr


def test_psi_is_near_zero_for_one_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(0)
    assert psi(rng.normal(size=5000), rng.normal(size=5000)) < 0.02
    assert psi(rng.normal(size=5000), rng.normal(1.0, size=5000)) > 0.5
    # A constant baseline has one bin; values elsewhere still count.
    assert psi(np.zeros(100), np.ones(100)) > 1
    with pytest.raises(MonitorError):
        psi(np.zeros(0), np.ones(3))


def test_thresholds_are_checked():
    with pytest.raises(CriticError, match="psi"):
        DriftThresholds(psi=0)
    with pytest.raises(CriticError, match="alpha"):
        DriftThresholds(alpha=1.5)


def test_unreadable_lines_are_reported_not_fatal(imdb_capture, drift_bundle, tmp_path):
    import shutil

    folder = tmp_path / "capture"
    shutil.copytree(imdb_capture, folder)
    first = capture_files(folder)[0]
    first.write_text(first.read_text() + "not json\n")
    report = monitor(folder, drift_bundle, log=quiet)
    assert len(report.unreadable) == 1 and report.overall["reviews"] == LIVE_REVIEWS
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MonitorError, match="no capture files"):
        monitor(empty, drift_bundle, log=quiet)
