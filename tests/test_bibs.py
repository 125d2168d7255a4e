"""Bib rules: which OCR words are bib numbers (defaults match the reference system)."""

from __future__ import annotations

import pytest

from chalicelib.bibs import TextDetection, bibs_from_detections, normalise_bib
from chalicelib.config import BibRules

DEFAULT = BibRules()


def words(*pairs):
    return [TextDetection(text, confidence, "WORD") for text, confidence in pairs]


def test_reference_vector_keeps_first_seen_order_and_strips_prefixes():
    found = bibs_from_detections(words(("1234", 95), ("1234", 99), ("A567", 91), ("b8901", 92)), DEFAULT)
    assert found == ["1234", "567", "8901"]


@pytest.mark.parametrize(
    ("text", "confidence"),
    [("12", 99), ("1234567", 99), ("AB123", 99), ("0000", 99), ("00000", 99), ("000000", 99), ("1234", 89.9)],
)
def test_rejects_non_bibs(text, confidence):
    assert bibs_from_detections(words((text, confidence)), DEFAULT) == []


def test_prefixed_zeros_are_a_bib():
    assert bibs_from_detections(words(("A0000", 95)), DEFAULT) == ["0000"]


def test_keeps_leading_zero_bibs():
    assert bibs_from_detections(words(("0042", 95), ("007", 95)), DEFAULT) == ["0042", "007"]


def test_confidence_exactly_at_threshold_counts():
    assert bibs_from_detections(words(("4321", 90.0)), DEFAULT) == ["4321"]


def test_lines_are_ignored_by_default():
    assert bibs_from_detections([TextDetection("1234", 99, "LINE")], DEFAULT) == []


def test_lines_count_when_configured():
    rules = BibRules(text_types=("WORD", "LINE"))
    assert bibs_from_detections([TextDetection("1234", 99, "LINE")], rules) == ["1234"]


def test_surrounding_space_is_trimmed():
    assert bibs_from_detections(words((" 5678 ", 95)), DEFAULT) == ["5678"]


def test_punctuation_and_mixed_text_are_not_bibs():
    assert bibs_from_detections(words(("12-34", 99), ("#1234", 99), ("1234A", 99), ("12.34", 99)), DEFAULT) == []


def test_prefix_kept_when_stripping_is_off():
    rules = BibRules(strip_prefix=False)
    assert bibs_from_detections(words(("a567", 95), ("A567", 95)), rules) == ["A567"]


def test_custom_pattern_and_exclusions():
    rules = BibRules(pattern=r"[0-9]{2,4}", excluded=("99",))
    assert bibs_from_detections(words(("12", 95), ("99", 95), ("12345", 95)), rules) == ["12"]


@pytest.mark.parametrize("typed", ["A1234", " 1234 ", "1234", "a1234"])
def test_typed_bibs_normalise_like_ocr(typed):
    assert normalise_bib(typed, DEFAULT) == "1234"


@pytest.mark.parametrize("typed", ["", "12", "12 34", "AB1234", "0000", "1234567"])
def test_typed_non_bibs_normalise_to_none(typed):
    assert normalise_bib(typed, DEFAULT) is None


def test_invalid_pattern_is_a_configuration_error():
    from chalicelib.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="BIB_PATTERN"):
        BibRules(pattern="[0-9")
