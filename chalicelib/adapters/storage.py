"""S3 adapter: GetObject, PutObject, DeleteObjects, ListObjectsV2, Get/PutObjectTagging, presigned GET and POST.

Returns domain values and raises chalicelib.domain.errors; nothing else knows S3's response shapes.
"""

from __future__ import annotations

import functools
import logging
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import ClientError

from chalicelib.domain.errors import ImageTooLarge, RawObjectMissing, ThrottlingException

log = logging.getLogger(__name__)

_THROTTLED = {"SlowDown", "ThrottlingException", "RequestLimitExceeded", "503"}
_MISSING = {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}
# S3 allows 2 KB of user metadata in all; only an original key can be long, so each value is capped.
MAX_METADATA_VALUE = 1024


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    metadata: dict[str, str]  # user metadata, keys lowercased without the x-amz-meta- prefix
    content_type: str | None


class Storage:
    def __init__(
        self, client: Any, *, clock: Callable[[], float] = time.time, url_cache_size: int = 20_000
    ) -> None:
        self._s3 = client
        self._clock = clock
        self._sign = functools.lru_cache(maxsize=url_cache_size)(self._sign_uncached)

    def get_object(
        self, bucket: str, key: str, *, max_bytes: int, version_id: str | None = None
    ) -> StoredObject:
        """Return an object's (or one version's) bytes and user metadata.

        Raises RawObjectMissing, ImageTooLarge (over `max_bytes`) or ThrottlingException.
        """
        request = {"Bucket": bucket, "Key": key}
        if version_id:
            request["VersionId"] = version_id
        try:
            response = self._s3.get_object(**request)
        except ClientError as exc:
            raise _translate(exc, f"s3://{bucket}/{key}") from exc
        length = int(response.get("ContentLength") or 0)
        if length > max_bytes:
            response["Body"].close()
            raise ImageTooLarge(f"upload is {length} bytes, over the limit of {max_bytes}")
        body = response["Body"].read()
        metadata = {k.lower(): v for k, v in (response.get("Metadata") or {}).items()}
        return StoredObject(body=body, metadata=metadata, content_type=response.get("ContentType"))

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        content_type: str,
        metadata: dict[str, str],
        tags: dict[str, str],
        cache_control: str | None = None,
    ) -> None:
        """Write an object with user metadata and tags (overwrites: same key, same content).

        Metadata values are made header-safe (ascii_header_value) and capped at MAX_METADATA_VALUE.
        """
        safe = {name: ascii_header_value(value)[:MAX_METADATA_VALUE] for name, value in metadata.items()}
        extra = {"CacheControl": cache_control} if cache_control else {}
        try:
            self._s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                Metadata=safe,
                Tagging=urlencode(tags),
                **extra,
            )
        except ClientError as exc:
            raise _translate(exc, f"s3://{bucket}/{key}") from exc

    def ensure_tag(self, bucket: str, key: str, name: str, value: str, *, version: str | None = None) -> bool:
        """Add tag `name=value` to an object, keeping its other tags; return True if it changed.

        Raises RawObjectMissing or ThrottlingException; other ClientErrors propagate.
        """
        target = {"Bucket": bucket, "Key": key}
        if version:
            target["VersionId"] = version
        try:
            tags = self._s3.get_object_tagging(**target).get("TagSet", [])
            if any(tag["Key"] == name and tag["Value"] == value for tag in tags):
                return False
            kept = [tag for tag in tags if tag["Key"] != name]
            self._s3.put_object_tagging(**target, Tagging={"TagSet": [*kept, {"Key": name, "Value": value}]})
        except ClientError as exc:
            raise _translate(exc, f"s3://{bucket}/{key}") from exc
        return True

    def presigned_get_url(self, bucket: str, key: str, *, expires_in: int) -> str:
        """Return a presigned GET URL for an object, valid for at least half of `expires_in`.

        Signing costs about a millisecond a URL (a 100-photo page: ~110 ms, bench/search.py), so a
        URL is reused within its half-life window: a warm API container answering the same gallery
        page again signs nothing.
        """
        window = int(self._clock() // max(1, expires_in // 2))
        return self._sign(bucket, key, expires_in, window)

    def presigned_post(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str,
        max_bytes: int,
        metadata: dict[str, str],
        expires_in: int,
    ) -> dict[str, Any]:
        """Return {"url", "fields"} for a browser or CLI POST of exactly this object.

        The signed policy pins the key, the content type, each metadata value, and a size of 1 to
        `max_bytes`; S3 refuses a POST that breaks any of them.
        """
        fields: dict[str, str] = {"Content-Type": content_type}
        conditions: list[Any] = [{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]]
        for name, value in metadata.items():
            field = f"x-amz-meta-{name}"
            fields[field] = ascii_header_value(value)[:MAX_METADATA_VALUE]
            conditions.append({field: fields[field]})
        post = self._s3.generate_presigned_post(
            Bucket=bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in
        )
        return {"url": str(post["url"]), "fields": dict(post["fields"])}

    def delete_objects(self, bucket: str, keys: list[str]) -> int:
        """Delete objects (missing ones are fine); return how many were asked for.

        Raises ThrottlingException, or RuntimeError naming the keys S3 could not delete.
        """
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            try:
                response = self._s3.delete_objects(
                    Bucket=bucket, Delete={"Objects": [{"Key": key} for key in chunk], "Quiet": True}
                )
            except ClientError as exc:
                raise _translate(exc, f"s3://{bucket}") from exc
            errors = response.get("Errors") or []
            if errors:
                raise RuntimeError(
                    f"S3 kept {len(errors)} objects, e.g. {errors[0].get('Key')}: {errors[0].get('Message')}"
                )
        return len(keys)

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        """Return every key under `prefix`."""
        found: list[str] = []
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        while True:
            try:
                response = self._s3.list_objects_v2(**request)
            except ClientError as exc:
                raise _translate(exc, f"s3://{bucket}/{prefix}") from exc
            found += [item["Key"] for item in response.get("Contents") or []]
            if not response.get("IsTruncated"):
                return found
            request["ContinuationToken"] = response["NextContinuationToken"]

    def _sign_uncached(self, bucket: str, key: str, expires_in: int, window: int) -> str:
        return str(
            self._s3.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
            )
        )


def _translate(exc: ClientError, what: str) -> Exception:
    code = exc.response.get("Error", {}).get("Code", "")
    if code in _MISSING:
        return RawObjectMissing(f"{what} does not exist ({code})")
    if code in _THROTTLED:
        return ThrottlingException(f"S3 throttled access to {what} ({code})")
    return exc


def ascii_header_value(value: str) -> str:
    """Return `value` made safe for an S3 user-metadata header (ASCII, no control characters).

    Non-ASCII characters are percent-encoded as UTF-8 so the original can be recovered with
    urllib.parse.unquote; S3 rejects or mangles raw non-ASCII metadata.
    """
    normalised = unicodedata.normalize("NFC", value)
    out = []
    for char in normalised:
        if char == "%" or not (0x20 <= ord(char) < 0x7F):
            out.append("".join(f"%{byte:02X}" for byte in char.encode("utf-8")))
        else:
            out.append(char)
    return "".join(out)
