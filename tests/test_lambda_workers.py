"""sandbox.lambdas.WorkerProcesses: the app's functions in worker processes, answering as Lambda does."""

from __future__ import annotations

import pytest

from sandbox.lambdas import WorkerProcesses
from tests.support.aws import STAGE

NOW = "2026-12-03T10:00:00Z"
# Preprocess refuses a key outside the raw folder before any AWS call.
NOT_A_RAW_KEY = {"bucket": "photos", "key": "org/event/thumbs/a.jpg", "uploaded_at": NOW}


@pytest.fixture(scope="module")
def workers():
    running = WorkerProcesses(2, STAGE, {})
    yield running
    running.close()


def test_a_function_error_comes_back_as_lambda_reports_it(workers):
    result, is_error = workers.invoke("preprocess", NOT_A_RAW_KEY)
    assert is_error
    assert result["errorType"] == "InvalidKey"
    assert "thumbs/a.jpg" in result["errorMessage"]


def test_each_call_gets_its_own_answer_from_whichever_worker_ran_it(workers):
    keys = [f"org/event/other-{index}/a.jpg" for index in range(6)]
    answers = [
        workers.invoke("preprocess", {"bucket": "photos", "key": key, "uploaded_at": NOW}) for key in keys
    ]
    assert all(is_error for _, is_error in answers)
    assert [repr(key) in result["errorMessage"] for (result, _), key in zip(answers, keys, strict=True)] == [
        True
    ] * 6


def test_a_worker_that_died_fails_its_callers_instead_of_hanging():
    running = WorkerProcesses(1, STAGE, {})
    try:
        assert running.invoke("preprocess", NOT_A_RAW_KEY)[1]
        running._processes[0].kill()
        running._readers[0].join(timeout=10)
        assert not running._readers[0].is_alive()
        with pytest.raises(RuntimeError, match="has ended"):
            running.invoke("preprocess", NOT_A_RAW_KEY)
    finally:
        running.close()
