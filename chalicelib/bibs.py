"""Bib-number rules (pure): which OCR detections are bib numbers, and how a bib is normalised.

The rules are engine-agnostic: they see `TextDetection` values, never a Rekognition response.
Defaults (chalicelib.config.BibRules) match the reference system: WORD detections with confidence
>= 90 whose text is 3-6 digits, optionally after one letter; the texts 0000, 00000 and 000000 are
rejected; the letter prefix is stripped; leading zeros are kept; duplicates keep first-seen order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from chalicelib.config import BibRules


@dataclass(frozen=True)
class TextDetection:
    """One piece of text an OCR engine found."""

    text: str
    confidence: float  # 0-100
    kind: str = "WORD"  # WORD or LINE


def bibs_from_detections(detections: Iterable[TextDetection], rules: BibRules) -> list[str]:
    """Return the distinct bib numbers in `detections`, in first-seen order."""
    kinds = set(rules.text_types)
    found: dict[str, None] = {}
    for detection in detections:
        if detection.kind.upper() not in kinds or detection.confidence < rules.min_confidence:
            continue
        bib = normalise_bib(detection.text, rules)
        if bib is not None:
            found.setdefault(bib, None)
    return list(found)


def normalise_bib(text: str, rules: BibRules) -> str | None:
    """Return the bib number `text` denotes under `rules`, or None if it is not a bib.

    Used both on OCR text and on what a runner types, so `A1234`, ` 1234 ` and `1234` agree.
    """
    candidate = text.strip()
    if not _pattern(rules.pattern).fullmatch(candidate):
        return None
    if candidate.upper() in rules.excluded:
        return None
    if rules.strip_prefix:
        candidate = candidate.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    return candidate.upper() or None


@lru_cache(maxsize=16)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
