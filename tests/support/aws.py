"""The process set up as `chalice deploy` runs the app, but against moto's in-process mock."""

from __future__ import annotations

import os

from sandbox.stage import stage_environment

STAGE = "dev"
REGION = "us-east-1"
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


def use_mocked_aws(stage: str = STAGE, region: str = REGION) -> None:
    """Set the stage's environment (app.py reads its settings at import time), fake credentials,
    and no endpoint variables, so every client goes to the mock."""
    os.environ.update(stage_environment(stage))
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
        }
    )
    for name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:
        del os.environ[name]
