"""Test setup: the dev stage's environment, fake AWS credentials, and the shared fixtures.

`chalice deploy` imports app.py with the stage's environment set; so do the tests, before any
test module imports app. Fixtures live here; helpers and builders in tests/support/.
"""

from __future__ import annotations

import boto3
import pytest

from tests.support.aws import MOTO_CONFIG, REGION, STAGE, use_mocked_aws

use_mocked_aws(STAGE, REGION)


@pytest.fixture
def aws():
    """moto for every AWS service, with Step Functions executing ASL; fresh clients each test."""
    from moto import mock_aws

    from chalicelib import clients
    from sandbox.atomic import serial_dynamodb

    clients.cache_clear()
    with mock_aws(config=MOTO_CONFIG), serial_dynamodb():
        yield
    clients.cache_clear()


@pytest.fixture
def resources(aws):
    """The dev stage's bucket, queues, table and state machine, created as the app expects."""
    from sandbox.resources import create_stage_resources

    return create_stage_resources(STAGE, region=REGION)


@pytest.fixture
def table(resources):
    """The repository over the stage's table; retries do not sleep."""
    from chalicelib.adapters.table import PhotoTable

    return PhotoTable(boto3.client("dynamodb"), resources.table_name, sleep=lambda seconds: None)


@pytest.fixture
def rekognition(monkeypatch):
    """The in-memory Rekognition the app uses; it sees people in selfies by colour."""
    from chalicelib import clients
    from tests.support.api import people_in
    from tests.support.fakes import FakeRekognition

    fake = FakeRekognition(people=people_in)
    monkeypatch.setattr(clients, "rekognition", lambda attempts=4: fake)
    return fake


@pytest.fixture
def client(resources, rekognition):
    """The Chalice test client for the dev stage; every HTTP response must match openapi.yaml."""
    from chalice.test import Client

    import app as snaprace
    from sandbox.stage import PROJECT_DIR
    from tests.support.contract import ContractClient

    with Client(snaprace.app, stage_name=STAGE, project_dir=str(PROJECT_DIR)) as chalice_client:
        yield ContractClient(chalice_client)


def pytest_deselected(items):
    from tests.support.contract import note_deselected

    note_deselected(items)


def pytest_collection_modifyitems(session, config, items):
    # The contract's coverage check counts what every other test exercised: it runs last.
    last = [item for item in items if item.name == "test_every_documented_response_was_exercised"]
    items[:] = [item for item in items if item not in last] + last


# Under pytest-xdist (`make test` runs two workers) each worker sees only its own modules'
# responses, so the coverage check moves to the controller: every worker hands over what it
# exercised, and the controller fails the session when a documented response was never produced.


def pytest_sessionfinish(session, exitstatus):
    from tests.support import contract

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker
        workeroutput["exercised"] = sorted(contract.EXERCISED)
        workeroutput["whole_suite"] = contract.whole_suite_selected(session)
        return
    if contract.WORKERS_REPORTED and not session.testsfailed:
        missing = contract.missed_by_workers()
        if missing:
            reporter = session.config.pluginmanager.get_plugin("terminalreporter")
            reporter.ensure_newline()
            reporter.write_line(
                f"FAILED: {len(missing)} documented response(s) no test produced: "
                + ", ".join(" ".join(m) for m in missing),
                red=True,
            )
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    from tests.support import contract

    contract.note_worker(getattr(node, "workeroutput", {}))
