"""Read a Chalice stage's environment from .chalice/config.json, as `chalice deploy` does."""

from __future__ import annotations

import json
import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
APP_NAME = "snaprace"

# statemachine.json placeholders -> the @app.lambda_function names they stand for.
FUNCTION_PLACEHOLDERS = {
    "PreprocessFunctionArn": "preprocess",
    "DetectTextFunctionArn": "detect_text",
    "IndexFacesFunctionArn": "index_faces",
    "FanoutFunctionArn": "fanout",
    "RecordFailureFunctionArn": "record_failure",
}


def stage_environment(stage: str, project_dir: Path = PROJECT_DIR) -> dict[str, str]:
    """Return the environment variables a stage's functions run with (top level + stage)."""
    config = json.loads((project_dir / ".chalice" / "config.json").read_text())
    if stage not in config.get("stages", {}):
        raise KeyError(f"no stage {stage!r} in .chalice/config.json")
    env = dict(config.get("environment_variables", {}))
    env.update(config["stages"][stage].get("environment_variables", {}))
    return env


def use_mocked_aws(stage: str, region: str = "us-east-1") -> None:
    """Set this process up as the tests run the app under moto's in-process mock.

    The stage's environment (app.py reads its settings at import time), fake credentials, and no
    endpoint variables, so every client goes to the mock.
    """
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


def function_name(stage: str, function: str) -> str:
    """Return the deployed Lambda name Chalice gives an @app.lambda_function."""
    return f"{APP_NAME}-{stage}-{function}"


def render_definition(stage: str, region: str, account: str, project_dir: Path = PROJECT_DIR) -> str:
    """Return statemachine.json with its ${...FunctionArn} placeholders filled for a stage."""
    text = (project_dir / "statemachine.json").read_text()
    for placeholder, function in FUNCTION_PLACEHOLDERS.items():
        arn = f"arn:aws:lambda:{region}:{account}:function:{function_name(stage, function)}"
        text = text.replace("${" + placeholder + "}", arn)
    if "${" in text:
        raise ValueError("statemachine.json has a placeholder this renderer does not know")
    return text
