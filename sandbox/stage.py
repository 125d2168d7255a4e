"""Read a Chalice stage's environment from .chalice/config.json, as `chalice deploy` does."""

from __future__ import annotations

import json
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
