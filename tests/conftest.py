"""Shared fixtures (small trained bundles reused by many tests, moto's server) and the hooks
of the whole suite. What the tests share besides fixtures is in tests/support/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from critic.inference.bundle import save_training_result
from critic.inference.domain_fit import fit_bundle_domain
from critic.training.train import train
from support.aws import moto_environment
from support.data import small_nbsvm_config, small_run_config
from support.servers import SHOWN_CHARACTERS, running


def pytest_configure(config):
    # The endpoints tests start run one worker process unless a test asks for more (with
    # CRITIC_WORKERS or --workers): the default, one per core, would double every server's
    # start-up on CI's two cores, and the reliability tests size their queues for one process.
    # tests/serving/test_workers.py runs the default.
    os.environ.setdefault("CRITIC_WORKERS", "1")


# Fixtures that train a model (once per session or module): every test that uses one, even
# through another fixture, is marked slow. Tests that train by themselves say so with
# @pytest.mark.slow. `pytest -m "not slow"` runs the rest in seconds.
TRAINING_FIXTURES = {
    "trained_bundle",
    "second_bundle",
    "nbsvm_bundle",
    "ensemble_bundle",
    "cli_bundle",
}


def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None:  # a fixture parametrised by the names of bundle fixtures
            used |= {value for value in callspec.params.values() if isinstance(value, str)}
        if used & TRAINING_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory, cache_dir) -> Path:
    """A reference LSTM trained for two epochs on 300 embedded reviews, saved as a bundle."""
    out = tmp_path_factory.mktemp("bundle") / "lstm"
    config = small_run_config(epochs=2)
    result = train(config, out, cache_dir=cache_dir, progress=False, log=lambda _: None)
    save_training_result(out, result)
    fit_bundle_domain(out, log=lambda _: None)  # as critic train does
    return out


@pytest.fixture(scope="session")
def second_bundle(tmp_path_factory, cache_dir) -> Path:
    """Another small LSTM (other seed, one epoch): a challenger for variant tests."""
    out = tmp_path_factory.mktemp("bundle2") / "lstm"
    result = train(
        small_run_config(seed=1), out, cache_dir=cache_dir, progress=False, log=lambda _: None
    )
    save_training_result(out, result)
    fit_bundle_domain(out, log=lambda _: None)  # as critic train does
    return out


@pytest.fixture(scope="session")
def nbsvm_bundle(tmp_path_factory, cache_dir) -> Path:
    """The n-gram model fitted on the 300 reviews of trained_bundle's split (a few seconds)."""
    out = tmp_path_factory.mktemp("nbsvm") / "nbsvm"
    result = train(
        small_nbsvm_config(), out, cache_dir=cache_dir, progress=False, log=lambda _: None
    )
    save_training_result(out, result)
    fit_bundle_domain(out, log=lambda _: None)  # as critic train does
    return out


@pytest.fixture(scope="session")
def ensemble_bundle(tmp_path_factory, trained_bundle, nbsvm_bundle) -> Path:
    """An ensemble of the small LSTM and the small n-gram model."""
    from critic.inference.ensemble import build_ensemble

    out = tmp_path_factory.mktemp("ensemble") / "ensemble"
    build_ensemble([nbsvm_bundle, trained_bundle], out, log=lambda _: None)
    return out


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory):
    """moto's server on a free loopback port, and an environment that sends boto3 there."""
    yield from moto_environment(tmp_path_factory)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under a test that fails while servers run (a module's, started by a fixture), what
    each has written: a failing request's cause is often only in the server's log."""
    report = yield
    if report.failed:
        for server in running():
            report.sections.append(
                (f"output of {server.describe()}", server.log(last=SHOWN_CHARACTERS))
            )
    return report
