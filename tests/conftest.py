"""Test setup: the dev stage's environment, fake AWS credentials and moto fixtures.

`chalice deploy` imports app.py with the stage's environment set; so do the tests, before any
test module imports app.
"""

from __future__ import annotations

import os

import pytest

from sandbox.stage import stage_environment

STAGE = "dev"
REGION = "us-east-1"

os.environ.update(stage_environment(STAGE))
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }
)
for _name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:
    del os.environ[_name]

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


@pytest.fixture
def aws():
    """moto for every AWS service, with Step Functions executing ASL; fresh clients each test."""
    from moto import mock_aws

    from chalicelib import clients

    clients.cache_clear()
    with mock_aws(config=MOTO_CONFIG):
        yield
    clients.cache_clear()


@pytest.fixture
def resources(aws):
    """The dev stage's bucket, queues, table and state machine, created as the app expects."""
    from sandbox.resources import create_stage_resources

    return create_stage_resources(STAGE, region=REGION)
