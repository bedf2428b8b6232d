"""Fixtures of the SageMaker tests.

Nothing here can reach AWS: moto_url (tests/conftest.py) starts moto's server on 127.0.0.1 for
each test module, points AWS_ENDPOINT_URL at it, gives fake credentials and hides the user's
AWS configuration files. The names and helpers these tests share are in support/aws.py.
"""

from __future__ import annotations

from types import SimpleNamespace

import boto3
import pytest

from support.aws import BUCKET, write_model_archive


@pytest.fixture(scope="module")
def aws(moto_url):
    """Plain boto3 clients on the moto server, to look at what critic made; the bucket exists."""
    clients = SimpleNamespace(
        s3=boto3.session.Session().client("s3"),
        sagemaker=boto3.session.Session().client("sagemaker"),
        url=moto_url,
    )
    clients.s3.create_bucket(Bucket=BUCKET)
    return clients


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    folder = tmp_path_factory.mktemp("archives")
    not_a_tarball = folder / "notes.tar.gz"
    not_a_tarball.write_text("not a tarball")
    return SimpleNamespace(
        champion=write_model_archive(folder / "champion.tar.gz", "champion"),
        challenger=write_model_archive(folder / "challenger.tar.gz", "challenger"),
        without_code=write_model_archive(folder / "bare.tar.gz", "bare", with_code=False),
        not_a_tarball=not_a_tarball,
        missing=folder / "missing.tar.gz",
    )
