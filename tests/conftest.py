"""Test setup: the dev stage's environment, fake AWS credentials and moto fixtures.

`chalice deploy` imports app.py with the stage's environment set; so do the tests, before any
test module imports app.
"""

from __future__ import annotations

import pytest

from sandbox.stage import use_mocked_aws

STAGE = "dev"
REGION = "us-east-1"

use_mocked_aws(STAGE, REGION)

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
