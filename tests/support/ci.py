"""What a test does when something it needs outside the project is missing."""

from __future__ import annotations

import os

import pytest


def skip_unless_ci(reason: str) -> None:
    """Skip the test with `reason`; under CI=true (.ci/run), fail it instead: CI has everything."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must not skip it")
    pytest.skip(reason)
