"""Lambda adapter: Invoke with InvocationType Event, to hand a long job to the app's own worker.

The worker (`event_jobs` in app.py) runs for up to its timeout and hands what is left back to
itself the same way, so a job of any size finishes without the caller waiting.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.errors import ThrottlingException


class Functions:
    def __init__(self, client: Any, jobs_function: str) -> None:
        self._lambda = client
        self._jobs = jobs_function

    def start_job(self, job: dict[str, Any]) -> None:
        """Queue `job` for the jobs function (asynchronous: Lambda retries it twice on failure).

        Raises ThrottlingException; other ClientErrors propagate.
        """
        try:
            self._lambda.invoke(
                FunctionName=self._jobs, InvocationType="Event", Payload=json.dumps(job).encode()
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in (
                "TooManyRequestsException",
                "ThrottlingException",
            ):
                raise ThrottlingException(f"Lambda throttled the job hand-off: {exc}") from exc
            raise
