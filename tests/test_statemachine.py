"""statemachine.json: valid ASL, and its error names and placeholders match the code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import app as snaprace
from chalicelib.domain import errors
from sandbox.stage import FUNCTION_PLACEHOLDERS, PROJECT_DIR, render_definition

DEFINITION = PROJECT_DIR / "statemachine.json"


def _states(definition):
    for name, state in definition["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _states(branch)


def test_passes_statelint():
    statelint = Path(sys.executable).with_name("statelint")
    result = subprocess.run(
        [str(statelint), "--ignore=URI,FLOAT", str(DEFINITION)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_custom_error_name_is_an_error_class_of_the_app():
    definition = json.loads(DEFINITION.read_text())
    names = set()
    for _, state in _states(definition):
        for rule in state.get("Retry", []) + state.get("Catch", []):
            names.update(n for n in rule["ErrorEquals"] if not n.startswith(("States.", "Lambda.")))
    assert names == {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "UnprocessedItemsError",
        "RekognitionUnavailable",
        "TurnRefused",
    }
    for name in names:
        assert issubclass(getattr(errors, name), errors.TransientError)


def test_throttling_is_retried_with_full_jitter_before_any_fallback():
    definition = json.loads(DEFINITION.read_text())
    for name, state in _states(definition):
        if state["Type"] != "Task":
            continue
        throttling = [r for r in state["Retry"] if "ThrottlingException" in r["ErrorEquals"]]
        assert throttling, name
        assert throttling[0]["JitterStrategy"] == "FULL" and throttling[0]["BackoffRate"] > 1
        assert "ProvisionedThroughputExceededException" in throttling[0]["ErrorEquals"]


def test_placeholders_name_the_apps_lambda_functions():
    text = DEFINITION.read_text()
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(FUNCTION_PLACEHOLDERS)
    assert set(FUNCTION_PLACEHOLDERS.values()) <= set(snaprace.app.handler_map)
    assert not re.search(r"\d{12}", text), "no account ids in the definition"


def test_rendered_definition_has_no_placeholders_left():
    rendered = json.loads(render_definition("prod", "eu-west-1", "111122223333"))
    resources = {state["Resource"] for _, state in _states(rendered) if state["Type"] == "Task"}
    assert resources == {
        f"arn:aws:lambda:eu-west-1:111122223333:function:snaprace-prod-{name}"
        for name in FUNCTION_PLACEHOLDERS.values()
    }


def test_no_task_times_out_while_its_lambda_may_still_run():
    # Equal timeouts let States.Timeout fire while the first attempt is still running, and the
    # retry would run beside it.
    from infra import stack

    definition = json.loads(DEFINITION.read_text())
    functions = FUNCTION_PLACEHOLDERS
    for name, state in _states(definition):
        if state["Type"] != "Task":
            continue
        function = functions[state["Resource"][2:-1]]
        lambda_timeout = stack.chalice_config("prod", function).lambda_timeout
        assert state["TimeoutSeconds"] >= lambda_timeout + 10, (name, state["TimeoutSeconds"], lambda_timeout)


def test_throttling_of_rekognition_never_ends_in_a_fallback():
    definition = json.loads(DEFINITION.read_text())
    states = dict(_states(definition))
    for task in ("DetectText", "IndexFaces"):
        (first, *rest) = states[task]["Catch"]
        assert set(first["ErrorEquals"]) == {
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "TurnRefused",
        }
        assert states[first["Next"]]["Type"] == "Fail"
        assert any("States.ALL" in catch["ErrorEquals"] for catch in rest)  # real errors still fall back
        (budget,) = [r for r in states[task]["Retry"] if "ThrottlingException" in r["ErrorEquals"]]
        assert "RekognitionUnavailable" in budget["ErrorEquals"]  # server faults are retried alike
