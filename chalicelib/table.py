"""DynamoDB adapter: BatchWriteItem, PutItem, GetItem, Query on the single SnapRace table.

Items go in and come out as plain Python values (int, str, list, dict); the DynamoDB type
encoding, Decimal conversion, pagination and UnprocessedItems retries stay here.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.errors import (
    ProvisionedThroughputExceededException,
    ThrottlingException,
    UnprocessedItemsError,
)

log = logging.getLogger(__name__)

# The table's key schema, shared by the deploy template, the sandbox and the tests.
KEY_ATTRIBUTES = ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")
GSI1 = "GSI1"
GSI2 = "GSI2"
BATCH_SIZE = 25  # BatchWriteItem's limit

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def table_definition(table_name: str) -> dict[str, Any]:
    """Return CreateTable arguments for the SnapRace table (on-demand, two GSIs)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in KEY_ATTRIBUTES],
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": f"{index}PK", "KeyType": "HASH"},
                    {"AttributeName": f"{index}SK", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in (GSI1, GSI2)
        ],
    }


class Table:
    def __init__(
        self,
        client,
        table_name: str,
        *,
        max_attempts: int = 8,
        base_delay: float = 0.05,
        max_delay: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._ddb = client
        self.name = table_name
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._sleep = sleep

    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        """Return the item with this key (strongly consistent), or None."""
        try:
            response = self._ddb.get_item(
                TableName=self.name, Key=_encode({"PK": pk, "SK": sk}), ConsistentRead=True
            )
        except ClientError as exc:
            raise _translate(exc) from exc
        item = response.get("Item")
        return _decode(item) if item else None

    def get_items(self, keys: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Return the items that exist among `keys` (BatchGetItem, 100 keys a call), in any order."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {self.name: {"Keys": [_encode(k) for k in keys[start : start + 100]]}}
            for attempt in range(self._max_attempts):
                try:
                    response = self._ddb.batch_get_item(RequestItems=pending)
                except ClientError as exc:
                    raise _translate(exc) from exc
                found += [_decode(item) for item in response.get("Responses", {}).get(self.name, [])]
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                self._sleep(random.uniform(0, min(self._max_delay, self._base_delay * 2**attempt)))
            else:
                raise UnprocessedItemsError("BatchGetItem left keys unprocessed after every attempt")
        return found

    def put_item(self, item: dict[str, Any]) -> None:
        """Write one item (overwriting the same key)."""
        try:
            self._ddb.put_item(TableName=self.name, Item=_encode(item))
        except ClientError as exc:
            raise _translate(exc) from exc

    def write_batch(self, puts: Iterable[dict[str, Any]], deletes: Iterable[dict[str, str]] = ()) -> int:
        """Put and delete items in BatchWriteItem chunks of 25; return the number of requests.

        UnprocessedItems are retried with capped exponential backoff and full jitter; raises
        UnprocessedItemsError if they never drain.
        """
        requests = [{"PutRequest": {"Item": _encode(item)}} for item in puts]
        requests += [{"DeleteRequest": {"Key": _encode(key)}} for key in deletes]
        for start in range(0, len(requests), BATCH_SIZE):
            self._write_chunk(requests[start : start + BATCH_SIZE])
        return len(requests)

    def query(
        self,
        *,
        pk: str,
        index: str | None = None,
        limit: int,
        start_key: dict[str, Any] | None = None,
        newest_first: bool = True,
        sk_prefix: str | None = None,
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Return one page (one Query) of a partition's items and the key to continue from, or None."""
        pk_name = f"{index}PK" if index else "PK"
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": pk_name},
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "Limit": limit,
            "ScanIndexForward": not newest_first,
        }
        if sk_prefix:
            request["KeyConditionExpression"] += " AND begins_with(#sk, :sk)"
            request["ExpressionAttributeNames"]["#sk"] = f"{index}SK" if index else "SK"
            request["ExpressionAttributeValues"][":sk"] = {"S": sk_prefix}
        if index:
            request["IndexName"] = index
        if start_key:
            request["ExclusiveStartKey"] = _encode(start_key)
        try:
            response = self._ddb.query(**request)
        except ClientError as exc:
            raise _translate(exc) from exc
        items = [_decode(item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return items, (_decode(last) if last else None)

    def _write_chunk(self, chunk: list[dict[str, Any]]) -> None:
        pending = {self.name: chunk}
        for attempt in range(self._max_attempts):
            try:
                response = self._ddb.batch_write_item(RequestItems=pending)
            except ClientError as exc:
                error = _translate(exc)
                if not isinstance(error, (ThrottlingException, ProvisionedThroughputExceededException)):
                    raise error from exc
                log.warning("batch write throttled attempt=%d: %s", attempt + 1, exc)
            else:
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    return
                log.info("batch write unprocessed=%d attempt=%d", len(pending.get(self.name, [])), attempt + 1)
            if attempt + 1 < self._max_attempts:
                # Full jitter: a uniform delay up to the capped exponential bound spreads retries.
                self._sleep(random.uniform(0, min(self._max_delay, self._base_delay * 2**attempt)))
        left = len(pending.get(self.name, chunk))
        raise UnprocessedItemsError(
            f"{left} write requests still unprocessed after {self._max_attempts} attempts"
        )


def _encode(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items()}


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value


def _translate(exc: ClientError) -> Exception:
    code = exc.response.get("Error", {}).get("Code", "")
    message = exc.response.get("Error", {}).get("Message", "")
    if code == "ProvisionedThroughputExceededException":
        return ProvisionedThroughputExceededException(f"DynamoDB: {message}")
    if code in ("ThrottlingException", "RequestLimitExceeded"):
        return ThrottlingException(f"DynamoDB throttled the call ({code}): {message}")
    return exc
