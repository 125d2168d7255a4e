"""schemathesis generates requests from openapi.yaml and checks every answer against it.

The API runs as `make demo` serves it (Chalice's local server, stage dev) over moto with a few
photos stored under the spec's example ids, and the in-memory Rekognition. schemathesis runs as
its own process with a fixed seed and deterministic generation (tests/schemathesis.toml), with
every check: no 5xx, documented statuses, headers and bodies, invalid input refused, valid input
accepted, undeclared methods refused. By hand, against a running `make demo`:

    .venv/bin/schemathesis --config-file tests/schemathesis.toml run openapi.yaml --url http://127.0.0.1:8000
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import boto3
import pytest

from chalicelib import clients
from chalicelib.adapters.table import PhotoTable
from sandbox.lambdas import LocalLambdas
from sandbox.runtime import free_port
from sandbox.stage import PROJECT_DIR
from tests.support.api import index_people, people_in
from tests.support.aws import MOTO_CONFIG, REGION, STAGE
from tests.support.fakes import FakeRekognition
from tests.support.organisers import bearer
from tests.support.photos import make_photo, record_failed, seed

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CONFIG = PROJECT_DIR / "tests" / "schemathesis.toml"
EXAMPLE_PHOTO_ID = "01JTGZ2SW8AAAAAAAAAAAAAAAA"  # openapi.yaml's example photo id


@pytest.fixture(scope="module")
def api_url():
    from moto import mock_aws

    import app as snaprace
    from sandbox.api import start_api
    from sandbox.resources import create_stage_resources

    clients.cache_clear()
    with mock_aws(config=MOTO_CONFIG), pytest.MonkeyPatch.context() as patch:
        resources = create_stage_resources(STAGE, region=REGION)
        table = PhotoTable(boto3.client("dynamodb"), resources.table_name)
        bucket = resources.bucket  # deleting a photo deletes its objects: they live in the real bucket
        example = make_photo("acme", "city-10k", 0, photographer="snap.shooter", bucket=bucket)
        photos = [(replace(example, photo_id=EXAMPLE_PHOTO_ID), ("1234",))]
        photos += [
            (make_photo("acme", "city-10k", n, photographer="snap.shooter", bucket=bucket), ("1234",))
            for n in range(1, 4)
        ]
        seed(table, photos)
        record_failed(table, "acme", "city-10k", 9, bucket=bucket)
        rekognition = FakeRekognition(people=people_in)
        index_people(rekognition, [(photo, ["alice"]) for photo, _ in photos])
        patch.setattr(clients, "rekognition", lambda attempts=4: rekognition)
        token = bearer(table, "acme")["Authorization"]
        port = free_port()
        stop = start_api(snaprace.app, STAGE, port)
        # Jobs the API hands to Lambda (reprocess, delete) and the pipeline runs they start, in-process.
        with LocalLambdas(snaprace.app, STAGE, retry_sleep_scale=0).installed():
            try:
                yield f"http://127.0.0.1:{port}", token
            finally:
                stop()
    clients.cache_clear()


def test_generated_requests_get_documented_answers(api_url):
    url, token = api_url
    command = [
        str(SCHEMATHESIS),
        "--no-color",
        "--config-file",
        str(CONFIG),
        "run",
        str(PROJECT_DIR / "openapi.yaml"),
        "--url",
        url,
        "--header",
        f"Authorization: {token}",
        "--checks",
        "all",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    summary = run.stdout[run.stdout.rfind("SUMMARY") :] if "SUMMARY" in run.stdout else run.stdout[-3000:]
    print(summary)  # noqa: T201 - the run's figures, shown with pytest -s
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-2000:]
    generated = re.search(r"(\d+) generated", summary)
    assert generated and int(generated[1]) >= 300, summary  # the run really exercised the API
