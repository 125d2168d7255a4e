"""DynamoDB adapter: the single SnapRace table, and the only module that knows its key layout.

AWS operations: GetItem, BatchGetItem, PutItem, BatchWriteItem, Query.

`PhotoTable` speaks the domain (save a processed photo with its bibs, record a failure, page a
listing, get a photo or its failure); the DynamoDB type encoding, Decimal conversion, pagination,
key attributes and UnprocessedItems retries stay in here. Records come out as plain dicts of
domain fields, without key attributes.

Item layout (every key is scoped by organisation AND event):

| item      | PK                              | SK                 | GSI1PK / GSI1SK                                      | GSI2PK / GSI2SK                               |
|-----------|---------------------------------|--------------------|------------------------------------------------------|-----------------------------------------------|
| PHOTO     | ORG#{org}#EVT#{event}           | PHOTO#{photo_id}   | ORG#{org}#EVT#{event}#PG#{handle} / PHOTO#{photo_id} | -                                             |
| BIB_INDEX | ORG#{org}#EVT#{event}#BIB#{bib} | PHOTO#{photo_id}   | -                                                    | -                                             |
| FAILED    | ORG#{org}#EVT#{event}           | FAILED#{photo_id}  | -                                                    | ORG#{org}#EVT#{event}#FAILED / FAILED#{id}    |

Photo ids are ULIDs ordered by capture time, so `ScanIndexForward=False` on any of these partitions
lists newest capture first. Partition keys are matched exactly (never by prefix), so `run-5k` never
matches `run-5k-2025` and organisations sharing an event id never see each other's photos. A
BIB_INDEX item carries every field a search result shows (model.DISPLAY_FIELDS), so a bib page is
one Query. FAILED items sit beside PHOTO items in the event partition under their own SK prefix,
so a gallery page is one Query on `begins_with(SK, "PHOTO#")`; a later successful run deletes them.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.domain.errors import (
    ProvisionedThroughputExceededException,
    ThrottlingException,
    UnprocessedItemsError,
)
from chalicelib.domain.model import DISPLAY_FIELDS, STATUS_FAILED, STATUS_PROCESSED, Analysis, Failure, Photo

log = logging.getLogger(__name__)

# The table's key schema, shared by the deploy template (compared in tests), the sandbox and tests.
KEY_ATTRIBUTES = ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")
INDEXES = ("GSI1", "GSI2")
_PHOTOGRAPHER_INDEX, _FAILURE_INDEX = INDEXES
BATCH_WRITE_SIZE = 25  # BatchWriteItem's limit
BATCH_GET_SIZE = 100  # BatchGetItem's limit

_PHOTO, _BIB_INDEX = "PHOTO", "BIB_INDEX"
_PHOTO_PREFIX, _FAILED_PREFIX = "PHOTO#", "FAILED#"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

Key = dict[str, Any]


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
            for index in INDEXES
        ],
    }


@dataclass(frozen=True)
class Page:
    """One page of a listing: records in listing order, and where the next page starts (or None)."""

    items: list[dict[str, Any]]
    last_key: Key | None


class PhotoTable:
    """The SnapRace table, in the domain's terms."""

    def __init__(
        self,
        client: Any,
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

    # --- writes --------------------------------------------------------------------------------

    def save_photo(self, photo: Photo, analysis: Analysis, *, clear_failures: Iterable[str] = ()) -> int:
        """Write a processed photo and one bib listing entry per bib; return the write requests made.

        Saving again writes the same items, removes the listing entries of bibs the photo no longer
        has, and deletes the failure records of `clear_failures` (photo ids).
        """
        item = _photo_item(photo, analysis)
        event = _event_pk(photo.org_id, photo.event_id)
        existing = self._get({"PK": event, "SK": _photo_sk(photo.photo_id)})
        stale = set((existing or {}).get("bibs") or ()) - set(item["bibs"])
        deletes = [
            {"PK": _bib_pk(photo.org_id, photo.event_id, bib), "SK": _photo_sk(photo.photo_id)}
            for bib in sorted(stale)
        ]
        deletes += [{"PK": event, "SK": _failed_sk(photo_id)} for photo_id in sorted(set(clear_failures))]
        return self._write_batch([item, *_bib_items(item)], deletes)

    def record_failure(
        self, org_id: str, event_id: str, photo_id: str, raw_key: str, failure: Failure
    ) -> None:
        """Write (or overwrite) the failure record of a photo that could not be processed."""
        sk = _failed_sk(photo_id)
        item = {
            "PK": _event_pk(org_id, event_id),
            "SK": sk,
            "type": _PHOTO,
            "status": STATUS_FAILED,
            "photo_id": photo_id,
            "org_id": org_id,
            "event_id": event_id,
            "raw_key": raw_key,
            "original_filename": raw_key.rsplit("/", 1)[-1],
            "error": failure.error,
            "cause": failure.cause,
            "failed_at": failure.failed_at,
            **failure.extra,
            "GSI2PK": _failed_pk(org_id, event_id),
            "GSI2SK": sk,
        }
        self._put(_without_none(item))

    # --- single records --------------------------------------------------------------------------

    def photo(self, org_id: str, event_id: str, photo_id: str) -> dict[str, Any] | None:
        """Return a processed photo's record (strongly consistent), or None."""
        return self._get({"PK": _event_pk(org_id, event_id), "SK": _photo_sk(photo_id)})

    def failure(self, org_id: str, event_id: str, photo_id: str) -> dict[str, Any] | None:
        """Return a photo's failure record, or None."""
        return self._get({"PK": _event_pk(org_id, event_id), "SK": _failed_sk(photo_id)})

    def photos(self, org_id: str, event_id: str, photo_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Return the records of those photos that exist, in any order (BatchGetItem)."""
        event = _event_pk(org_id, event_id)
        return self._get_many(
            [{"PK": event, "SK": _photo_sk(photo_id)} for photo_id in dict.fromkeys(photo_ids)]
        )

    # --- listings (each page is one Query) -------------------------------------------------------

    def gallery_page(self, org_id: str, event_id: str, *, limit: int, after: Key | None = None) -> Page:
        """Return a page of an event's processed photos, newest capture first."""
        return self._query(_event_pk(org_id, event_id), limit=limit, after=after, sk_prefix=_PHOTO_PREFIX)

    def bib_page(self, org_id: str, event_id: str, bib: str, *, limit: int, after: Key | None = None) -> Page:
        """Return a page of the photos showing a (normalised) bib, newest capture first."""
        return self._query(_bib_pk(org_id, event_id, bib), limit=limit, after=after)

    def photographer_page(
        self, org_id: str, event_id: str, handle: str, *, limit: int, after: Key | None = None
    ) -> Page:
        """Return a page of one photographer's photos in an event, newest capture first."""
        return self._query(
            _photographer_pk(org_id, event_id, handle), limit=limit, after=after, index=_PHOTOGRAPHER_INDEX
        )

    def event_records(self, org_id: str, event_id: str) -> Iterator[dict[str, Any]]:
        """Yield every photo and failure record of an event (strongly consistent, all pages)."""
        after: Key | None = None
        while True:
            page = self._query(_event_pk(org_id, event_id), limit=1000, after=after, consistent=True)
            yield from page.items
            if page.last_key is None:
                return
            after = page.last_key

    # --- DynamoDB calls --------------------------------------------------------------------------

    def _get(self, key: Key) -> dict[str, Any] | None:
        try:
            response = self._ddb.get_item(TableName=self.name, Key=_encode(key), ConsistentRead=True)
        except ClientError as exc:
            raise _translate(exc) from exc
        item = response.get("Item")
        return _record(item) if item else None

    def _get_many(self, keys: list[Key]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_SIZE):
            pending: dict[str, Any] = {
                self.name: {"Keys": [_encode(k) for k in keys[start : start + BATCH_GET_SIZE]]}
            }
            for attempt in range(self._max_attempts):
                try:
                    response = self._ddb.batch_get_item(RequestItems=pending)
                except ClientError as exc:
                    raise _translate(exc) from exc
                found += [_record(item) for item in response.get("Responses", {}).get(self.name, [])]
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                self._backoff(attempt)
            else:
                raise UnprocessedItemsError("BatchGetItem left keys unprocessed after every attempt")
        return found

    def _put(self, item: dict[str, Any]) -> None:
        try:
            self._ddb.put_item(TableName=self.name, Item=_encode(item))
        except ClientError as exc:
            raise _translate(exc) from exc

    def _write_batch(self, puts: Iterable[dict[str, Any]], deletes: Iterable[Key] = ()) -> int:
        requests = [{"PutRequest": {"Item": _encode(item)}} for item in puts]
        requests += [{"DeleteRequest": {"Key": _encode(key)}} for key in deletes]
        for start in range(0, len(requests), BATCH_WRITE_SIZE):
            self._write_chunk(requests[start : start + BATCH_WRITE_SIZE])
        return len(requests)

    def _write_chunk(self, chunk: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self.name: chunk}
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
                log.info(
                    "batch write unprocessed=%d attempt=%d", len(pending.get(self.name, [])), attempt + 1
                )
            if attempt + 1 < self._max_attempts:
                self._backoff(attempt)
        left = len(pending.get(self.name, chunk))
        raise UnprocessedItemsError(
            f"{left} write requests still unprocessed after {self._max_attempts} attempts"
        )

    def _backoff(self, attempt: int) -> None:
        # Full jitter: a uniform delay up to the capped exponential bound spreads retries.
        self._sleep(random.uniform(0, min(self._max_delay, self._base_delay * 2**attempt)))

    def _query(
        self,
        pk: str,
        *,
        limit: int,
        after: Key | None,
        index: str | None = None,
        sk_prefix: str | None = None,
        consistent: bool = False,
    ) -> Page:
        names = {"#pk": f"{index}PK" if index else "PK"}
        values: dict[str, Any] = {":pk": {"S": pk}}
        condition = "#pk = :pk"
        if sk_prefix:
            condition += " AND begins_with(#sk, :sk)"
            names["#sk"] = f"{index}SK" if index else "SK"
            values[":sk"] = {"S": sk_prefix}
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "Limit": limit,
            "ScanIndexForward": False,
        }
        if index:
            request["IndexName"] = index
        elif consistent:
            request["ConsistentRead"] = True
        if after:
            request["ExclusiveStartKey"] = _encode(after)
        try:
            response = self._ddb.query(**request)
        except ClientError as exc:
            raise _translate(exc) from exc
        last = response.get("LastEvaluatedKey")
        return Page([_record(item) for item in response.get("Items", [])], _decode(last) if last else None)


# --- the key layout ------------------------------------------------------------------------------


def _event_pk(org_id: str, event_id: str) -> str:
    return f"ORG#{org_id}#EVT#{event_id}"


def _bib_pk(org_id: str, event_id: str, bib: str) -> str:
    return f"{_event_pk(org_id, event_id)}#BIB#{bib}"


def _photographer_pk(org_id: str, event_id: str, handle: str) -> str:
    return f"{_event_pk(org_id, event_id)}#PG#{handle}"


def _failed_pk(org_id: str, event_id: str) -> str:
    return f"{_event_pk(org_id, event_id)}#FAILED"


def _photo_sk(photo_id: str) -> str:
    return f"{_PHOTO_PREFIX}{photo_id}"


def _failed_sk(photo_id: str) -> str:
    return f"{_FAILED_PREFIX}{photo_id}"


def _photo_item(photo: Photo, analysis: Analysis) -> dict[str, Any]:
    item: dict[str, Any] = {
        "PK": _event_pk(photo.org_id, photo.event_id),
        "SK": _photo_sk(photo.photo_id),
        "type": _PHOTO,
        "status": STATUS_PROCESSED,
        **photo.to_dict(),
        "bibs": list(dict.fromkeys(analysis.bibs)),
        "face_ids": list(analysis.face_ids),
        "face_count": len(analysis.face_ids),
        "bibs_error": analysis.bibs_error,
        "faces_error": analysis.faces_error,
    }
    if photo.photographer:
        item["GSI1PK"] = _photographer_pk(photo.org_id, photo.event_id, photo.photographer)
        item["GSI1SK"] = _photo_sk(photo.photo_id)
    return _without_none(item)


def _bib_items(photo_item: dict[str, Any]) -> list[dict[str, Any]]:
    display = {name: photo_item[name] for name in DISPLAY_FIELDS if name in photo_item}
    return [
        {
            "PK": _bib_pk(photo_item["org_id"], photo_item["event_id"], bib),
            "SK": photo_item["SK"],
            "type": _BIB_INDEX,
            "bib": bib,
            **display,
        }
        for bib in photo_item["bibs"]  # already distinct
    ]


def _without_none(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if value is not None}


# --- encoding ------------------------------------------------------------------------------------


def _encode(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(value) for key, value in item.items()}


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}


def _record(item: dict[str, Any]) -> dict[str, Any]:
    """A stored item as a domain record: decoded, without the key attributes."""
    return {key: value for key, value in _decode(item).items() if key not in KEY_ATTRIBUTES}


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
