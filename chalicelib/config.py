"""Settings from the environment: the single list of variable names and defaults.

`.chalice/config.json` sets every one of these per stage; the defaults below only document the
reference behaviour and serve pure unit tests. Names of AWS resources have no default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from chalicelib.domain.bibs import BibRules
from chalicelib.domain.errors import ConfigurationError
from chalicelib.domain.imaging import GRID_FORMATS

N = TypeVar("N", int, float)


@dataclass(frozen=True)
class Settings:
    table_name: str
    state_machine_name: str
    # Preprocess
    max_width: int = 2048
    jpeg_quality: int = 87  # with LANCZOS: fewer bytes than sharp's mozjpeg q90, higher SSIM
    max_image_pixels: int = 120_000_000
    max_upload_bytes: int = 200 * 1024 * 1024
    # The gallery's grid rendition, written next to the processed copy (bench/grid.py).
    grid_side: int = 512
    grid_format: str = "WEBP"
    grid_quality: int = 75
    # DetectText
    bib_rules: BibRules = BibRules()  # noqa: RUF009 - frozen, so one shared default is safe
    # IndexFaces
    index_max_faces: int = 15
    index_quality_filter: str = "AUTO"
    # Fanout: BatchWriteItem UnprocessedItems retries
    fanout_max_attempts: int = 8
    fanout_base_delay_ms: int = 50
    fanout_max_delay_ms: int = 2000
    # Search API
    cursor_secret: str = ""
    page_default_limit: int = 30
    page_max_limit: int = 100
    cdn_base_url: str = ""  # empty: presigned S3 GET URLs instead
    url_expires_seconds: int = 3600
    # Lambda takes at most 6 MB (6,291,456 bytes) of request event, and API Gateway hands a binary
    # body over base64-encoded (4 bytes per 3): 4.5 MB of selfie is 6,000,000 bytes, which leaves
    # the rest of the event (headers, request context) about 290 KB.
    selfie_max_bytes: int = 4_500_000
    selfie_max_pixels: int = 40_000_000  # checked from the header, before any pixel is decoded
    selfie_max_side: int = 1920
    search_threshold: float = 85.0
    search_max_faces: int = 50
    # Bib search's face matches: SearchFaces on up to `link_search_faces` faces linked to the bib
    # (its calls per search); a match needs `link_threshold`, and `link_margin` more than the
    # linked face's best match among the other runners of its own photo.
    link_search_faces: int = 3
    link_threshold: float = 90.0
    link_margin: float = 5.0
    # Rekognition: collections are {prefix}.{len(org)}.{org}.{event}; the quota the pipeline paces
    # its runs to (DetectText and IndexFaces transactions per second; 0: no pacing) and the share
    # of it the pipeline plans to use.
    collection_prefix: str = "snaprace"
    rekognition_tps: float = 0.0
    rekognition_pace_share: float = 0.96
    rekognition_call_share: float = 0.98
    # Organisers and photographers
    photo_bucket_prefix: str = ""  # the bucket is {prefix}{account id}, as the deploy template names it
    jobs_function: str = ""  # the Lambda that runs reprocess and delete jobs
    upload_url_seconds: int = 900
    event_cache_seconds: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `env` (default os.environ); raise ConfigurationError if invalid."""
        env = os.environ if env is None else env
        return cls(
            table_name=_required(env, "TABLE_NAME"),
            state_machine_name=_required(env, "STATE_MACHINE_NAME"),
            max_width=_int(env, "PROCESSED_MAX_WIDTH", cls.max_width),
            jpeg_quality=_int(env, "JPEG_QUALITY", cls.jpeg_quality),
            max_image_pixels=_int(env, "MAX_IMAGE_PIXELS", cls.max_image_pixels),
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", cls.max_upload_bytes),
            grid_side=_int(env, "GRID_MAX_SIDE", cls.grid_side),
            grid_format=_grid_format(env),
            grid_quality=_int(env, "GRID_QUALITY", cls.grid_quality),
            bib_rules=BibRules(
                pattern=env.get("BIB_PATTERN", BibRules.pattern),
                min_confidence=_float(env, "BIB_MIN_CONFIDENCE", BibRules.min_confidence),
                excluded=_list(env, "BIB_EXCLUDED", BibRules.excluded),
                strip_prefix=_bool(env, "BIB_STRIP_PREFIX", BibRules.strip_prefix),
                text_types=tuple(t.upper() for t in _list(env, "BIB_TEXT_TYPES", BibRules.text_types)),
                join_split_numbers=_bool(env, "BIB_JOIN_SPLIT_NUMBERS", BibRules.join_split_numbers),
                min_height_ratio=_float(env, "BIB_MIN_HEIGHT_RATIO", BibRules.min_height_ratio),
            ),
            index_max_faces=_int(env, "INDEX_MAX_FACES", cls.index_max_faces),
            index_quality_filter=env.get("INDEX_QUALITY_FILTER", cls.index_quality_filter),
            fanout_max_attempts=_int(env, "FANOUT_MAX_ATTEMPTS", cls.fanout_max_attempts),
            fanout_base_delay_ms=_int(env, "FANOUT_BASE_DELAY_MS", cls.fanout_base_delay_ms),
            fanout_max_delay_ms=_int(env, "FANOUT_MAX_DELAY_MS", cls.fanout_max_delay_ms),
            cursor_secret=_secret(env, "CURSOR_SECRET"),
            page_default_limit=_int(env, "PAGE_DEFAULT_LIMIT", cls.page_default_limit),
            page_max_limit=_int(env, "PAGE_MAX_LIMIT", cls.page_max_limit),
            cdn_base_url=env.get("CDN_BASE_URL", "").strip().rstrip("/"),
            url_expires_seconds=_int(env, "URL_EXPIRES_SECONDS", cls.url_expires_seconds),
            selfie_max_bytes=_int(env, "SELFIE_MAX_BYTES", cls.selfie_max_bytes),
            selfie_max_pixels=_int(env, "SELFIE_MAX_PIXELS", cls.selfie_max_pixels),
            selfie_max_side=_int(env, "SELFIE_MAX_SIDE", cls.selfie_max_side),
            search_threshold=_float(env, "SEARCH_FACE_THRESHOLD", cls.search_threshold),
            search_max_faces=_int(env, "SEARCH_MAX_FACES", cls.search_max_faces),
            link_search_faces=_int(env, "LINK_SEARCH_FACES", cls.link_search_faces),
            link_threshold=_float(env, "LINK_FACE_THRESHOLD", cls.link_threshold),
            link_margin=_float(env, "LINK_FACE_MARGIN", cls.link_margin),
            collection_prefix=env.get("COLLECTION_PREFIX", cls.collection_prefix),
            rekognition_tps=_float(env, "REKOGNITION_TPS", cls.rekognition_tps),
            rekognition_pace_share=_float(env, "REKOGNITION_PACE_SHARE", cls.rekognition_pace_share),
            rekognition_call_share=_float(env, "REKOGNITION_CALL_SHARE", cls.rekognition_call_share),
            photo_bucket_prefix=env.get("PHOTO_BUCKET_PREFIX", cls.photo_bucket_prefix),
            jobs_function=env.get("JOBS_FUNCTION", cls.jobs_function),
            upload_url_seconds=_int(env, "UPLOAD_URL_SECONDS", cls.upload_url_seconds),
            event_cache_seconds=_int(env, "EVENT_CACHE_SECONDS", cls.event_cache_seconds),
        )


@dataclass(frozen=True)
class AppSettings:
    """What app.py needs at import time (when `chalice deploy` loads it with the stage's env)."""

    queue_name: str
    max_concurrency: int
    log_level: str
    cors_allowed_origins: tuple[str, ...]
    # How long API Gateway reuses a token's verdict: a revoked token works at most this long.
    token_cache_seconds: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AppSettings:
        """Read the ingest queue name, its concurrency cap and the log level."""
        env = os.environ if env is None else env
        return cls(
            queue_name=_required(env, "INGEST_QUEUE_NAME"),
            max_concurrency=_int(env, "INGEST_MAX_CONCURRENCY", 10),
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            cors_allowed_origins=_list(env, "CORS_ALLOWED_ORIGINS", ()),
            token_cache_seconds=_int(env, "TOKEN_CACHE_SECONDS", cls.token_cache_seconds),
        )


def _grid_format(env: Mapping[str, str]) -> str:
    value = env.get("GRID_FORMAT", Settings.grid_format).strip().upper()
    if value not in GRID_FORMATS:
        raise ConfigurationError(f"GRID_FORMAT must be one of {', '.join(GRID_FORMATS)}, got {value!r}")
    return value


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is required")
    return value


def _secret(env: Mapping[str, str], name: str) -> str:
    value = _required(env, name)
    if len(value) < 16:
        raise ConfigurationError(f"{name} must be at least 16 characters")
    return value


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(env, name, default, int, "an integer")


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float, "a number")


def _number(env: Mapping[str, str], name: str, default: N, cast: Callable[[str], N], kind: str) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be {kind}, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {raw!r}")


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    return tuple(item.strip() for item in raw.split(",") if item.strip())
