"""SQS adapter: SendMessage (and GetQueueUrl) on the ingest queue, to start a pipeline run later.

A run whose start slot is in the future waits in the queue as a delayed message rather than in
Step Functions: waiting there costs nothing, and the execution starts when Rekognition has room.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.domain.errors import ThrottlingException

MAX_DELAY_SECONDS = 900  # SQS's longest message delay


class IngestQueue:
    def __init__(self, client: Any, queue_name: str) -> None:
        self._sqs = client
        self._name = queue_name

    @cached_property
    def _url(self) -> str:
        return str(self._sqs.get_queue_url(QueueName=self._name)["QueueUrl"])

    def send_later(self, body: dict[str, Any], *, delay_seconds: int) -> None:
        """Send `body` (as JSON) to be delivered after `delay_seconds` (0 to 900).

        Raises ThrottlingException; other ClientErrors propagate.
        """
        delay = max(0, min(MAX_DELAY_SECONDS, delay_seconds))
        try:
            self._sqs.send_message(QueueUrl=self._url, MessageBody=json.dumps(body), DelaySeconds=delay)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ThrottlingException", "RequestThrottled"):
                raise ThrottlingException(f"SQS throttled SendMessage: {exc}") from exc
            raise
