"""Bib-number rules (pure): which OCR detections are bib numbers, and how a bib is normalised.

The rules are engine-agnostic: they see `TextDetection` values, never a Rekognition response.
Defaults (BibRules below) start from the reference system: WORD detections with
confidence >= 90 whose text is 3-6 digits, optionally after one letter; the texts 0000, 00000 and
000000 are rejected; the letter prefix is stripped; leading zeros are kept; duplicates keep
first-seen order. Two rules refine that, and both leave detections without the facts they need
alone, so the reference behaviour holds for bare words:

- Split numbers (`join_split_numbers`): a LINE such as "12 34", none of whose words is a bib by
  itself, is read as the bib its words make together ("1234"). OCR splits a number where the bib
  is creased, folded or printed with a logo between the digits.
- Relative height (`min_height_ratio`): a candidate whose box is less tall than that fraction of
  the tallest candidate's box in the same photo is dropped. Bib numbers are the biggest digits a
  runner wears; small digits (sponsor phone numbers, watches, timing mats, the bibs of runners far
  behind) are not what the photo is of.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from chalicelib.domain.errors import ConfigurationError


@dataclass(frozen=True)
class BibRules:
    """How OCR detections become bib numbers (the stage's BIB_* settings)."""

    pattern: str = r"[A-Za-z]?[0-9]{3,6}"
    min_confidence: float = 90.0
    excluded: tuple[str, ...] = ("0000", "00000", "000000")
    strip_prefix: bool = True
    text_types: tuple[str, ...] = ("WORD",)
    # A LINE of words none of which is a bib ("12 34") counts as the bib they make together.
    join_split_numbers: bool = True
    # Candidates less tall than this fraction of the photo's tallest candidate are dropped (0: off).
    min_height_ratio: float = 0.5

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ConfigurationError(f"BIB_PATTERN is not a regular expression: {exc}") from exc
        if not 0.0 <= self.min_height_ratio <= 1.0:
            raise ConfigurationError(
                f"BIB_MIN_HEIGHT_RATIO must be between 0 and 1, got {self.min_height_ratio}"
            )


@dataclass(frozen=True)
class TextBox:
    """An axis-aligned box as fractions of the image's width and height."""

    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class TextDetection:
    """One piece of text an OCR engine found."""

    text: str
    confidence: float  # 0-100
    kind: str = "WORD"  # WORD or LINE
    box: TextBox | None = None
    id: int | None = None
    parent_id: int | None = None  # a WORD's LINE


@dataclass(frozen=True)
class BibRead:
    """A bib number read in a photo, with the box of the text it was read from (if known)."""

    bib: str
    box: TextBox | None = None


def bibs_from_detections(detections: Iterable[TextDetection], rules: BibRules) -> list[str]:
    """Return the distinct bib numbers in `detections`, in first-seen order."""
    return [read.bib for read in bib_reads(detections, rules)]


def bib_reads(detections: Iterable[TextDetection], rules: BibRules) -> list[BibRead]:
    """Return the distinct bib numbers in `detections` with the box each was first read from."""
    kinds = set(rules.text_types)
    candidates: list[tuple[str, TextDetection]] = []
    for detection in detections:
        if detection.confidence < rules.min_confidence:
            continue
        kind = detection.kind.upper()
        bib = normalise_bib(detection.text, rules) if kind in kinds else None
        if bib is None and kind == "LINE" and rules.join_split_numbers:
            bib = _joined_bib(detection.text, rules)
        if bib is not None:
            candidates.append((bib, detection))

    heights = [detection.box.height for _, detection in candidates if detection.box is not None]
    floor = rules.min_height_ratio * max(heights, default=0.0)
    found: dict[str, BibRead] = {}
    for bib, detection in candidates:
        if detection.box is not None and detection.box.height < floor:
            continue
        found.setdefault(bib, BibRead(bib, detection.box))
    return list(found.values())


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


def _joined_bib(text: str, rules: BibRules) -> str | None:
    """Return the bib a LINE's words make together when none of them is a bib alone, else None."""
    words = text.split()
    if len(words) < 2 or any(normalise_bib(word, rules) is not None for word in words):
        return None
    return normalise_bib("".join(words), rules)


@lru_cache(maxsize=16)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
