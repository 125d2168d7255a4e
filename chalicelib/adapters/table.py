"""DynamoDB adapter: the single SnapRace table, and the only module that knows its key layout.

AWS operations: GetItem, BatchGetItem, PutItem, BatchWriteItem, Query.

`PhotoTable` speaks the domain (save a processed photo with its bibs, record a failure, page a
listing, get a photo or its failure); the DynamoDB type encoding, Decimal conversion, pagination,
key attributes and UnprocessedItems retries stay in here. Records come out as plain dicts of
domain fields, without key attributes.

Item layout (every key is scoped by organisation AND event):

| item         | PK                              | SK                 | GSI1PK / GSI1SK                                      | GSI2PK / GSI2SK                            |
|--------------|---------------------------------|--------------------|------------------------------------------------------|--------------------------------------------|
| PHOTO        | ORG#{org}#EVT#{event}           | PHOTO#{photo_id}   | ORG#{org}#EVT#{event}#PG#{handle} / PHOTO#{photo_id} | -                                          |
| BIB_INDEX    | ORG#{org}#EVT#{event}#BIB#{bib} | PHOTO#{photo_id}   | -                                                    | -                                          |
| FAILED       | ORG#{org}#EVT#{event}           | FAILED#{photo_id}  | -                                                    | ORG#{org}#EVT#{event}#FAILED / FAILED#{id} |
| EVENT        | ORG#{org}#EVT#{event}           | META               | ORG#{org}#EVENTS / EVT#{event}                       | EVENTS / ORG#{org}#EVT#{event}             |
| photographer | ORG#{org}#EVT#{event}           | META#PG#{handle}   | -                                                    | -                                          |
| UPLOAD       | ORG#{org}#EVT#{event}           | UPLOAD#{upload_id} | -                                                    | -                                          |
| CONTENT      | ORG#{org}#EVT#{event}           | CONTENT#{sha256}   | -                                                    | -                                          |
| FACES        | ORG#{org}#EVT#{event}           | FACES#{photo_id}   | -                                                    | -                                          |
| bib set      | ORG#{org}#EVT#{event}           | BIBS               | -                                                    | -                                          |
| start list   | ORG#{org}#EVT#{event}           | START_LIST         | -                                                    | -                                          |
| TOKEN        | TOKEN#{sha256 of the token}     | TOKEN              | ORG#{org}#TOKENS / {created_at}#{token_id}           | -                                          |
| pace         | PACE                            | REKOGNITION or op  | -                                                    | -                                          |

The EVENT record and the photographer counters hold exact counts: they change in the same
transaction as the PHOTO record they count. A CONTENT claim names the photo that owns a file's
bytes in an event, so the same bytes uploaded twice are one photo. A FACES record notes the face
ids each IndexFaces run created for a photo until Fanout keeps the final set and deletes the rest.
The pace item holds the stage's next free start slot (see services/pacing.py). The bib set holds
one number attribute `BIB#{bib}` per bib read in the event: its photo count, moved in the same
transaction as the PHOTO record, so "did you mean" is one GetItem. A BIB_INDEX item carries the
`face_id` linked to its bib in that photo (if any), so a bib's linked faces are one Query. The start
list is one item: {bib: [name, category]}.

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
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.domain.errors import (
    ProvisionedThroughputExceededException,
    SlotTooFar,
    ThrottlingException,
    UnprocessedItemsError,
)
from chalicelib.domain.model import (
    DISPLAY_FIELDS,
    STATUS_FAILED,
    STATUS_PROCESSED,
    Analysis,
    EventSettings,
    Failure,
    Photo,
)

log = logging.getLogger(__name__)

# The table's key schema, shared by the deploy template (compared in tests), the sandbox and tests.
KEY_ATTRIBUTES = ("PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")
INDEXES = ("GSI1", "GSI2")
# GSI1: a photographer's photos, an organisation's events and tokens. GSI2: an event's failures,
# and every event.
_GSI1, _GSI2 = INDEXES
BATCH_WRITE_SIZE = 25  # BatchWriteItem's limit
BATCH_GET_SIZE = 100  # BatchGetItem's limit

_PHOTO, _BIB_INDEX, _EVENT = "PHOTO", "BIB_INDEX", "EVENT"
_PHOTO_PREFIX, _FAILED_PREFIX = "PHOTO#", "FAILED#"
# The event's own record and its photographers' counters sort together under META.
_EVENT_SK, _PG_PREFIX = "META", "META#PG#"
_TOKEN_SK = "TOKEN"
_BIBS_SK, _BIB_COUNT = "BIBS", "BIB#"  # the bib set item and its per-bib count attributes
_START_LIST_SK = "START_LIST"
_PACE_PK = "PACE"  # SK: REKOGNITION (run starts), or an operation's name (its calls)
# Every event, in the second index: retention and the public listing read it.
_ALL_EVENTS = "EVENTS"

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

    def save_photo(
        self, photo: Photo, analysis: Analysis, *, clear_failures: Iterable[str] = (), generation: int = 0
    ) -> int:
        """Write a processed photo and one bib listing entry per bib; return the write requests made.

        The event's photo count and the photographer's count move only when the photo is new (or
        changes photographer), in the same transaction as the photo, so retries and concurrent
        runs of one photo count it once. Saving again writes the same items, removes the listing
        entries of bibs the photo no longer has, and deletes the failure records of
        `clear_failures` (photo ids).
        """
        item = _photo_item(photo, analysis, generation)
        event = _event_pk(photo.org_id, photo.event_id)
        key = {"PK": event, "SK": _photo_sk(photo.photo_id)}
        for _ in range(self._max_attempts):
            existing = self._get(key)
            try:
                self._put_counted(item, existing)
                break
            except _ConditionFailed:
                continue  # another run of this photo wrote it meanwhile: read again
        else:
            raise UnprocessedItemsError(
                f"photo {photo.photo_id} kept changing under {self._max_attempts} saves"
            )
        stale = set((existing or {}).get("bibs") or ()) - set(item["bibs"])
        deletes = [
            {"PK": _bib_pk(photo.org_id, photo.event_id, bib), "SK": _photo_sk(photo.photo_id)}
            for bib in sorted(stale)
        ]
        deletes += [{"PK": event, "SK": _failed_sk(photo_id)} for photo_id in sorted(set(clear_failures))]
        requests = 1 + self._write_batch(_bib_items(item), deletes)
        return requests + self._reconcile_bibs(key, item, stale)

    def _reconcile_bibs(self, key: Key, item: dict[str, Any], stale: set[str]) -> int:
        """Make the photo's bib entries match its record as it is now; return the requests made.

        Two runs of one photo (a reprocess while the first still runs) can interleave: run B
        saves its record and bib entries between run A's record and A's bib entries, so A
        would list the photo under bibs its record no longer shows (or delete entries B's record
        needs). Each run therefore reads the record back after writing its entries and, if
        another run's record is there now, rewrites the entries from that record.
        """
        current = self._get(key)
        if current is None:
            return 0
        current = {**current, "SK": item["SK"]}
        entries = _bib_items(current)
        if entries == _bib_items(item):
            return 0
        shown = set(current.get("bibs") or ())
        gone = (set(item["bibs"]) | stale) - shown
        deletes = [
            {"PK": _bib_pk(item["org_id"], item["event_id"], bib), "SK": item["SK"]} for bib in sorted(gone)
        ]
        log.info(
            "photo=%s changed under this save: bib entries rewritten from the current record",
            item["photo_id"],
        )
        return self._write_batch(entries, deletes)

    def delete_photo(self, org_id: str, event_id: str, photo_id: str) -> dict[str, Any] | None:
        """Delete a photo's record, bib entries, failure record and content claim; return the record.

        The counts drop in the same transaction as the record. The returned record carries
        `duplicate_keys`: the other raw keys that held the same bytes. None if there was no such
        photo (its failure record, if any, is still deleted).
        """
        event = _event_pk(org_id, event_id)
        key = {"PK": event, "SK": _photo_sk(photo_id)}
        existing = self._get(key)
        record: dict[str, Any] | None = None
        if existing is not None:
            handle = existing.get("photographer")
            actions: list[dict[str, Any]] = [
                {"Delete": {"Key": _encode(key), "ConditionExpression": "attribute_exists(PK)"}},
                self._count(_event_key(org_id, event_id), -1),
            ]
            if handle:
                actions.append(self._count(_photographer_key(org_id, event_id, handle), -1, handle=handle))
            bib_counts = self._bib_counts({"org_id": org_id, "event_id": event_id}, existing)
            if bib_counts is not None:
                actions.append(bib_counts)
            try:
                self._transact(actions)
                record = existing
            except _ConditionFailed:
                record = None  # deleted concurrently: the other delete moved the counts
        noted = self.noted_faces(org_id, event_id, photo_id)
        deletes = [{"PK": event, "SK": _failed_sk(photo_id)}, {"PK": event, "SK": _faces_sk(photo_id)}]
        if record is not None and noted:
            record = {**record, "face_ids": sorted(set(record.get("face_ids") or ()) | noted)}
        if existing is not None:
            deletes += [
                {"PK": _bib_pk(org_id, event_id, bib), "SK": _photo_sk(photo_id)} for bib in existing["bibs"]
            ]
            digest = existing.get("content_sha256")
            claim = self._get({"PK": event, "SK": _hash_sk(digest)}) if digest else None
            if claim is not None and claim.get("photo_id") == photo_id:
                deletes.append({"PK": event, "SK": _hash_sk(str(digest))})
                if record is not None:
                    record = {**record, "duplicate_keys": claim.get("duplicate_keys") or []}
        self._write_batch([], deletes)
        return record

    def delete_upload(self, org_id: str, event_id: str, upload_id: str) -> None:
        """Delete an upload's record (a missing one is fine)."""
        self._write_batch([], [{"PK": _event_pk(org_id, event_id), "SK": _upload_sk(upload_id)}])

    def record_failure(
        self,
        org_id: str,
        event_id: str,
        photo_id: str,
        raw_key: str,
        failure: Failure,
        *,
        generation: int = 0,
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
            "generation": generation,
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
        return self._query(_photographer_pk(org_id, event_id, handle), limit=limit, after=after, index=_GSI1)

    def bib_faces(self, org_id: str, event_id: str, bib: str) -> list[tuple[str, str | None]]:
        """Return (photo_id, linked face_id or None) for every photo of a bib, newest first."""
        found: list[tuple[str, str | None]] = []
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "PK = :pk",
            "ProjectionExpression": "photo_id, face_id",
            "ExpressionAttributeValues": {":pk": {"S": _bib_pk(org_id, event_id, bib)}},
            "ScanIndexForward": False,
        }
        while True:
            with _errors():
                response = self._ddb.query(**request)
            found += [
                (item["photo_id"], item.get("face_id")) for item in map(_decode, response.get("Items", []))
            ]
            if "LastEvaluatedKey" not in response:
                return found
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def bib_counts(self, org_id: str, event_id: str) -> dict[str, int]:
        """Return {bib: photo count} for every bib with photos in an event (one GetItem)."""
        item = self._get({"PK": _event_pk(org_id, event_id), "SK": _BIBS_SK}) or {}
        return {
            name[len(_BIB_COUNT) :]: int(count)
            for name, count in item.items()
            if name.startswith(_BIB_COUNT) and int(count) > 0
        }

    def put_start_list(
        self, org_id: str, event_id: str, runners: dict[str, list[str | None]], *, now: str
    ) -> None:
        """Replace an event's start list ({bib: [name, category]})."""
        self._put(
            {
                "PK": _event_pk(org_id, event_id),
                "SK": _START_LIST_SK,
                "type": "START_LIST",
                "runners": runners,
                "updated_at": now,
            }
        )

    def start_list(self, org_id: str, event_id: str) -> dict[str, list[str | None]] | None:
        """Return an event's start list ({bib: [name, category]}), or None if it has none."""
        item = self._get({"PK": _event_pk(org_id, event_id), "SK": _START_LIST_SK})
        return None if item is None else dict(item.get("runners") or {})

    def records_page(self, org_id: str, event_id: str, *, limit: int, after: Key | None = None) -> Page:
        """Return a page of an event's photo and failure records (a page may hold none but continue)."""
        page = self._query(_event_pk(org_id, event_id), limit=limit, after=after, consistent=True)
        return Page([item for item in page.items if item.get("type") == _PHOTO], page.last_key)

    def failures_page(self, org_id: str, event_id: str, *, limit: int, after: Key | None = None) -> Page:
        """Return a page of an event's failure records, newest first."""
        return self._query(_failed_pk(org_id, event_id), limit=limit, after=after, index=_GSI2)

    def event_records(self, org_id: str, event_id: str) -> Iterator[dict[str, Any]]:
        """Yield every photo and failure record of an event (strongly consistent, all pages)."""
        after: Key | None = None
        while True:
            page = self._query(_event_pk(org_id, event_id), limit=1000, after=after, consistent=True)
            yield from (item for item in page.items if item.get("type") == _PHOTO)
            if page.last_key is None:
                return
            after = page.last_key

    # --- events ---------------------------------------------------------------------------------

    def put_event(self, org_id: str, event_id: str, settings: EventSettings, *, now: str) -> dict[str, Any]:
        """Create or update an event's settings (its counts are kept); return the event record."""
        values = {
            "type": _EVENT,
            "org_id": org_id,
            "event_id": event_id,
            "status": "ACTIVE",
            "updated_at": now,
            **settings.to_dict(),
            "GSI1PK": _org_events_pk(org_id),
            "GSI1SK": f"EVT#{event_id}",
            "GSI2PK": _ALL_EVENTS,
            "GSI2SK": f"ORG#{org_id}#EVT#{event_id}",
        }
        removed = sorted(name for name, value in values.items() if value is None)
        values = {name: value for name, value in values.items() if value is not None}
        names = {f"#a{n}": name for n, name in enumerate(values)}
        expression = "SET " + ", ".join(f"#a{n} = :a{n}" for n in range(len(values)))
        expression += ", #created = if_not_exists(#created, :now), #count = if_not_exists(#count, :zero)"
        names.update({"#created": "created_at", "#count": "photo_count"})
        if removed:
            names.update({f"#r{n}": name for n, name in enumerate(removed)})
            expression += " REMOVE " + ", ".join(f"#r{n}" for n in range(len(removed)))
        attribute_values = {f":a{n}": value for n, value in enumerate(values.values())}
        attribute_values.update({":now": now, ":zero": 0})
        with _errors():
            response = self._ddb.update_item(
                TableName=self.name,
                Key=_encode(_event_key(org_id, event_id)),
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_encode(attribute_values),
                ReturnValues="ALL_NEW",
            )
        return _record(response["Attributes"])

    def event(self, org_id: str, event_id: str) -> dict[str, Any] | None:
        """Return an event's record (settings, status, photo count), or None if never created."""
        record = self._get(_event_key(org_id, event_id))
        return record if record is not None and record.get("type") == _EVENT else None

    def photographer_counts(self, org_id: str, event_id: str) -> list[dict[str, Any]]:
        """Return [{handle, photo_count}] of the photographers with photos in an event, by handle."""
        found: list[dict[str, Any]] = []
        after: Key | None = None
        while True:
            page = self._query(
                _event_pk(org_id, event_id),
                limit=1000,
                after=after,
                sk_prefix=_PG_PREFIX,
                consistent=True,
                newest_first=False,
            )
            found += [
                {"handle": r["handle"], "photo_count": r["photo_count"]}
                for r in page.items
                if r.get("photo_count")
            ]
            if page.last_key is None:
                return found
            after = page.last_key

    def events(self) -> list[dict[str, Any]]:
        """Return every event record of every organisation (for listings and retention)."""
        found: list[dict[str, Any]] = []
        after: Key | None = None
        while True:
            page = self._query(_ALL_EVENTS, limit=1000, after=after, index=_GSI2, newest_first=False)
            found += page.items
            if page.last_key is None:
                return found
            after = page.last_key

    def update_event(self, org_id: str, event_id: str, **values: Any) -> None:
        """Set attributes of an existing event (status, faces_deleted_at, ...)."""
        names = {f"#a{n}": name for n, name in enumerate(values)}
        with _errors():
            self._ddb.update_item(
                TableName=self.name,
                Key=_encode(_event_key(org_id, event_id)),
                UpdateExpression="SET " + ", ".join(f"#a{n} = :a{n}" for n in range(len(values))),
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_encode(
                    {f":a{n}": value for n, value in enumerate(values.values())}
                ),
            )

    def delete_event_leftovers(self, org_id: str, event_id: str) -> int:
        """Delete every item of an event but its record (uploads, claims, counters); return how many.

        Photos and failures go first through delete_photo, so their bib entries go with them.
        """
        keys: list[Key] = []
        after: Key | None = None
        while True:
            page = self._query_keys(_event_pk(org_id, event_id), after=after)
            keys += [key for key in page.items if key["SK"] != _EVENT_SK]
            if page.last_key is None:
                break
            after = page.last_key
        self._write_batch([], keys)
        self.update_event(org_id, event_id, photo_count=0)
        return len(keys)

    # --- content claims: the same bytes in one event are one photo ---------------------------------

    def claim_content(self, org_id: str, event_id: str, digest: str, claim: dict[str, Any]) -> dict[str, Any]:
        """Record `claim` (photo_id, raw_key, captured_at) as the owner of these bytes in the event,
        unless a photo already owns them; return the owning claim."""
        item = {
            "PK": _event_pk(org_id, event_id),
            "SK": _hash_sk(digest),
            "type": "CONTENT",
            "sha256": digest,
            **claim,
        }
        try:
            with _errors():
                self._ddb.put_item(
                    TableName=self.name,
                    Item=_encode(item),
                    ConditionExpression="attribute_not_exists(PK)",
                )
            return _record(_encode(item))
        except _ConditionFailed:
            owner = self._get({"PK": item["PK"], "SK": item["SK"]})
            return owner if owner is not None else self.claim_content(org_id, event_id, digest, claim)

    def note_duplicate(self, org_id: str, event_id: str, digest: str, raw_key: str) -> None:
        """Remember another raw key holding these bytes (deleting the photo deletes it too)."""
        with _errors():
            self._ddb.update_item(
                TableName=self.name,
                Key=_encode({"PK": _event_pk(org_id, event_id), "SK": _hash_sk(digest)}),
                UpdateExpression="ADD duplicate_keys :key",
                ExpressionAttributeValues={":key": {"SS": [raw_key]}},
            )

    def content_owner(self, org_id: str, event_id: str, digest: str) -> dict[str, Any] | None:
        """Return the claim on these bytes in the event, or None."""
        return self._get({"PK": _event_pk(org_id, event_id), "SK": _hash_sk(digest)})

    # --- faces a run indexed, until Fanout settles the photo's set -------------------------------

    def note_faces(self, org_id: str, event_id: str, photo_id: str, face_ids: list[str]) -> None:
        """Remember faces indexed for a photo (Fanout deletes those the final set does not keep)."""
        if not face_ids:
            return
        with _errors():
            self._ddb.update_item(
                TableName=self.name,
                Key=_encode({"PK": _event_pk(org_id, event_id), "SK": _faces_sk(photo_id)}),
                UpdateExpression="ADD face_ids :ids SET #type = :type",
                ExpressionAttributeNames={"#type": "type"},
                ExpressionAttributeValues={":ids": {"SS": list(face_ids)}, ":type": {"S": "FACES"}},
            )

    def noted_faces(self, org_id: str, event_id: str, photo_id: str) -> set[str]:
        """Return every face id noted for a photo since Fanout last settled it."""
        record = self._get({"PK": _event_pk(org_id, event_id), "SK": _faces_sk(photo_id)})
        return set((record or {}).get("face_ids") or ())

    def forget_noted_faces(self, org_id: str, event_id: str, photo_id: str) -> None:
        """Drop a photo's noted faces once its final set is saved."""
        self._write_batch([], [{"PK": _event_pk(org_id, event_id), "SK": _faces_sk(photo_id)}])

    # --- pacing: the stage's pipeline starts runs at its Rekognition quota -------------------------

    def reserve_slot(
        self, now: float, interval: float, *, pace: str = "REKOGNITION", max_wait: float | None = None
    ) -> float:
        """Reserve the next slot of `pace` (epoch seconds): now if the last one is past, else the
        last one plus `interval`. Atomic across every concurrent caller: one conditional update,
        or one add that returns the slot it took.

        With `max_wait`, a slot further than that from `now` is not taken: SlotTooFar is raised
        and the counter is left as it was, so refusals never push later callers further out.
        """
        key = _encode({"PK": _PACE_PK, "SK": pace})
        try:
            with _errors():
                self._ddb.update_item(
                    TableName=self.name,
                    Key=key,
                    UpdateExpression="SET next_at = :next, #type = :type",
                    ConditionExpression="attribute_not_exists(next_at) OR next_at <= :now",
                    ExpressionAttributeNames={"#type": "type"},
                    ExpressionAttributeValues=_encode(
                        {":next": _micro(now + interval), ":now": _micro(now), ":type": "PACE"}
                    ),
                )
            return now
        except _ConditionFailed:
            pass
        limit = {} if max_wait is None else {":limit": _micro(now + max_wait)}
        try:
            with _errors():
                response = self._ddb.update_item(
                    TableName=self.name,
                    Key=key,
                    UpdateExpression="SET next_at = next_at + :interval",
                    **({"ConditionExpression": "next_at <= :limit"} if limit else {}),
                    ExpressionAttributeValues=_encode({":interval": _micro(interval), **limit}),
                    ReturnValues="UPDATED_OLD",
                )
        except _ConditionFailed:
            raise SlotTooFar(f"{pace}'s next slot is over {max_wait} s away") from None
        return float(_decode(response["Attributes"])["next_at"])

    # --- uploads ---------------------------------------------------------------------------------

    def put_upload(self, org_id: str, event_id: str, upload: dict[str, Any]) -> None:
        """Write (or overwrite) an upload's record."""
        item = {
            "PK": _event_pk(org_id, event_id),
            "SK": _upload_sk(upload["upload_id"]),
            "type": "UPLOAD",
            **upload,
        }
        self._put(_without_none(item))

    def upload(self, org_id: str, event_id: str, upload_id: str) -> dict[str, Any] | None:
        """Return an upload's record, or None."""
        return self._get({"PK": _event_pk(org_id, event_id), "SK": _upload_sk(upload_id)})

    def update_upload(self, org_id: str, event_id: str, upload_id: str, **values: Any) -> bool:
        """Set attributes of an upload's record; return False if there is no such upload."""
        names = {f"#a{n}": name for n, name in enumerate(values)}
        try:
            with _errors():
                self._ddb.update_item(
                    TableName=self.name,
                    Key=_encode({"PK": _event_pk(org_id, event_id), "SK": _upload_sk(upload_id)}),
                    UpdateExpression="SET " + ", ".join(f"#a{n} = :a{n}" for n in range(len(values))),
                    ConditionExpression="attribute_exists(PK)",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=_encode(
                        {f":a{n}": value for n, value in enumerate(values.values())}
                    ),
                )
        except _ConditionFailed:
            return False
        return True

    # --- organiser tokens (stored only as a hash) --------------------------------------------------

    def put_token(self, token_hash: str, record: dict[str, Any]) -> None:
        """Store a new token's record under its hash."""
        item = {
            "PK": _token_pk(token_hash),
            "SK": _TOKEN_SK,
            "type": "TOKEN",
            "token_hash": token_hash,
            **record,
            "GSI1PK": _org_tokens_pk(record["org_id"]),
            "GSI1SK": f"{record['created_at']}#{record['token_id']}",
        }
        with _errors():
            self._ddb.put_item(
                TableName=self.name,
                Item=_encode(item),
                ConditionExpression="attribute_not_exists(PK)",
            )

    def token(self, token_hash: str) -> dict[str, Any] | None:
        """Return the record of the token with this hash, or None."""
        return self._get({"PK": _token_pk(token_hash), "SK": _TOKEN_SK})

    def org_tokens(self, org_id: str) -> list[dict[str, Any]]:
        """Return an organisation's token records (with their hashes), oldest first."""
        found: list[dict[str, Any]] = []
        after: Key | None = None
        while True:
            page = self._query(
                _org_tokens_pk(org_id), limit=1000, after=after, index=_GSI1, newest_first=False
            )
            found += page.items
            if page.last_key is None:
                return found
            after = page.last_key

    def revoke_token(self, token_hash: str, *, now: str) -> None:
        """Mark a token revoked (its record stays, for the listing)."""
        with _errors():
            self._ddb.update_item(
                TableName=self.name,
                Key=_encode({"PK": _token_pk(token_hash), "SK": _TOKEN_SK}),
                UpdateExpression="SET revoked_at = if_not_exists(revoked_at, :now)",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues=_encode({":now": now}),
            )

    # --- DynamoDB calls --------------------------------------------------------------------------

    def _transact(self, actions: list[dict[str, Any]]) -> None:
        for action in actions:
            next(iter(action.values()))["TableName"] = self.name
        try:
            self._ddb.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            reasons = [reason.get("Code") for reason in exc.response.get("CancellationReasons") or []]
            if "ConditionalCheckFailed" in reasons:
                raise _ConditionFailed("TransactWriteItems") from exc
            if _code(exc) == "TransactionCanceledException" and "TransactionConflict" in reasons:
                raise _ConditionFailed("TransactWriteItems") from exc
            raise _translate(exc) from exc

    def _put_counted(self, item: dict[str, Any], existing: dict[str, Any] | None) -> None:
        """Put a photo, moving the event's and photographers' counts as the change requires."""
        org_id, event_id = item["org_id"], item["event_id"]
        new_handle, old_handle = item.get("photographer"), (existing or {}).get("photographer")
        put: dict[str, Any] = {"Item": _encode(item)}
        actions: list[dict[str, Any]] = [{"Put": put}]
        if existing is None:
            put["ConditionExpression"] = "attribute_not_exists(PK)"
            actions.append(self._count(_event_key(org_id, event_id), +1))
        else:
            put["ConditionExpression"] = (
                "attribute_exists(PK) AND photographer = :old"
                if old_handle
                else ("attribute_exists(PK) AND attribute_not_exists(photographer)")
            )
            if old_handle:
                put["ExpressionAttributeValues"] = _encode({":old": old_handle})
        bib_counts = self._bib_counts(item, existing)
        if bib_counts is not None:
            actions.append(bib_counts)
        if new_handle != old_handle or existing is None:
            if new_handle:
                actions.append(
                    self._count(_photographer_key(org_id, event_id, new_handle), +1, handle=new_handle)
                )
            if old_handle and existing is not None:
                actions.append(
                    self._count(_photographer_key(org_id, event_id, old_handle), -1, handle=old_handle)
                )
        if len(actions) == 1:
            # Same photo, same photographer: a plain conditional put.
            with _errors():
                self._ddb.put_item(TableName=self.name, **put)
        else:
            self._transact(actions)

    @staticmethod
    def _bib_counts(item: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any] | None:
        """Return the update moving the event's bib set from `existing`'s bibs to `item`'s (or None)."""
        new, old = set(item.get("bibs") or ()), set((existing or {}).get("bibs") or ())
        deltas = dict.fromkeys(new - old, +1) | dict.fromkeys(old - new, -1)
        if not deltas:
            return None
        names = {f"#b{n}": f"{_BIB_COUNT}{bib}" for n, bib in enumerate(sorted(deltas))}
        values = {f":b{n}": deltas[bib] for n, bib in enumerate(sorted(deltas))}
        return {
            "Update": {
                "Key": _encode({"PK": _event_pk(item["org_id"], item["event_id"]), "SK": _BIBS_SK}),
                "UpdateExpression": "ADD "
                + ", ".join(f"{name} {value}" for name, value in zip(names, values, strict=True)),
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": _encode(values),
            }
        }

    @staticmethod
    def _count(key: Key, delta: int, *, handle: str | None = None) -> dict[str, Any]:
        expression = "ADD photo_count :delta"
        values: dict[str, Any] = {":delta": delta}
        update: dict[str, Any] = {"Key": _encode(key)}
        if handle is not None:
            expression += " SET handle = :handle, #type = :type"
            values.update({":handle": handle, ":type": "PHOTOGRAPHER"})
            update["ExpressionAttributeNames"] = {"#type": "type"}
        update.update({"UpdateExpression": expression, "ExpressionAttributeValues": _encode(values)})
        return {"Update": update}

    def _query_keys(self, pk: str, *, after: Key | None) -> Page:
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ProjectionExpression": "PK, SK",
            "ConsistentRead": True,
        }
        if after:
            request["ExclusiveStartKey"] = _encode(after)
        with _errors():
            response = self._ddb.query(**request)
        last = response.get("LastEvaluatedKey")
        return Page([_decode(item) for item in response.get("Items", [])], _decode(last) if last else None)

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
                if attempt + 1 < self._max_attempts:  # no wait before giving up
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
        newest_first: bool = True,
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
            "ScanIndexForward": not newest_first,
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


def _event_key(org_id: str, event_id: str) -> Key:
    return {"PK": _event_pk(org_id, event_id), "SK": _EVENT_SK}


def _photographer_key(org_id: str, event_id: str, handle: str) -> Key:
    return {"PK": _event_pk(org_id, event_id), "SK": f"{_PG_PREFIX}{handle}"}


def _org_events_pk(org_id: str) -> str:
    return f"ORG#{org_id}#EVENTS"


def _org_tokens_pk(org_id: str) -> str:
    return f"ORG#{org_id}#TOKENS"


def _token_pk(token_hash: str) -> str:
    return f"TOKEN#{token_hash}"


def _hash_sk(digest: str) -> str:
    return f"CONTENT#{digest}"


def _faces_sk(photo_id: str) -> str:
    return f"FACES#{photo_id}"


def _upload_sk(upload_id: str) -> str:
    return f"UPLOAD#{upload_id}"


def _photo_sk(photo_id: str) -> str:
    return f"{_PHOTO_PREFIX}{photo_id}"


def _failed_sk(photo_id: str) -> str:
    return f"{_FAILED_PREFIX}{photo_id}"


def _photo_item(photo: Photo, analysis: Analysis, generation: int) -> dict[str, Any]:
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
        "links": dict(analysis.links) or None,
        "unlisted_bibs": list(analysis.unlisted_bibs) or None,
        "corrections": [dict(c) for c in analysis.corrections] or None,
        "generation": generation,
    }
    if photo.photographer:
        item["GSI1PK"] = _photographer_pk(photo.org_id, photo.event_id, photo.photographer)
        item["GSI1SK"] = _photo_sk(photo.photo_id)
    return _without_none(item)


def _bib_items(photo_item: dict[str, Any]) -> list[dict[str, Any]]:
    display = {name: photo_item[name] for name in DISPLAY_FIELDS if name in photo_item}
    links = photo_item.get("links") or {}
    return [
        _without_none(
            {
                "PK": _bib_pk(photo_item["org_id"], photo_item["event_id"], bib),
                "SK": photo_item["SK"],
                "type": _BIB_INDEX,
                "bib": bib,
                **display,
                "face_id": links.get(bib),
            }
        )
        for bib in photo_item["bibs"]  # already distinct
    ]


def _without_none(item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if value is not None}


# --- encoding ------------------------------------------------------------------------------------


def _micro(seconds: float) -> float:
    # Pace slots to the microsecond: coarser rounding would bend the shares at high quotas.
    return round(seconds, 6)


def _encode(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _serializer.serialize(_storable(value)) for key, value in item.items()}


def _storable(value: Any) -> Any:
    # DynamoDB numbers are decimals: boto3 refuses floats rather than guess their precision.
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, dict):
        return {k: _storable(v) for k, v in value.items()}
    return value


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


class _ConditionFailed(Exception):
    """A conditional write found the item in another state (handled inside this module)."""


@contextmanager
def _errors() -> Iterator[None]:
    """Translate a DynamoDB call's ClientError: a failed condition, throttling, or as it is."""
    try:
        yield
    except ClientError as exc:
        if _code(exc) == "ConditionalCheckFailedException":
            raise _ConditionFailed(str(exc)) from exc
        raise _translate(exc) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate(exc: ClientError) -> Exception:
    code = _code(exc)
    message = exc.response.get("Error", {}).get("Message", "")
    if code == "ProvisionedThroughputExceededException":
        return ProvisionedThroughputExceededException(f"DynamoDB: {message}")
    if code in ("ThrottlingException", "RequestLimitExceeded"):
        return ThrottlingException(f"DynamoDB throttled the call ({code}): {message}")
    return exc
