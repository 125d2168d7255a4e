"""Bib rules: which OCR words are bib numbers (defaults match the reference system)."""

from __future__ import annotations

import pytest

from chalicelib.domain.bibs import BibRules, TextBox, TextDetection, bibs_from_detections, normalise_bib

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
    assert (
        bibs_from_detections(words(("12-34", 99), ("#1234", 99), ("1234A", 99), ("12.34", 99)), DEFAULT) == []
    )


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
    from chalicelib.domain.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="BIB_PATTERN"):
        BibRules(pattern="[0-9")


# --- split numbers: a LINE whose words are pieces of one bib -------------------------------


def line(text, confidence=95.0, box=None):
    return TextDetection(text, confidence, "LINE", box=box)


def test_a_number_split_into_words_is_read_from_its_line():
    assert bibs_from_detections([line("12 34"), *words(("12", 95), ("34", 95))], DEFAULT) == ["1234"]


def test_a_split_prefixed_number_keeps_the_prefix_rule():
    assert bibs_from_detections([line("A 12 34")], DEFAULT) == ["1234"]


def test_lines_of_whole_bibs_are_not_joined():
    detections = [line("A1234 0567"), *words(("A1234", 95), ("0567", 95))]
    assert bibs_from_detections(detections, DEFAULT) == ["1234", "0567"]


def test_a_line_with_one_whole_bib_is_not_joined():
    assert bibs_from_detections([line("12 345")], DEFAULT) == []


@pytest.mark.parametrize("text", ["RUN 12 34", "12-34 56", "12 34 56 78", "1234"])
def test_lines_that_join_into_no_bib_give_nothing(text):
    assert bibs_from_detections([line(text)], DEFAULT) == []


def test_a_split_number_needs_the_confidence_threshold():
    assert bibs_from_detections([line("12 34", confidence=89.9)], DEFAULT) == []


def test_joining_can_be_switched_off():
    rules = BibRules(join_split_numbers=False)
    assert bibs_from_detections([line("12 34")], rules) == []


def test_split_words_alone_are_never_joined():
    assert bibs_from_detections(words(("12", 99), ("34", 99)), DEFAULT) == []


# --- relative height: bib numbers are the biggest digits in the photo ----------------------


def boxed(text, height, confidence=95.0, kind="WORD"):
    box = TextBox(left=0.1, top=0.2, width=height * 2, height=height)
    return TextDetection(text, confidence, kind, box=box)


def test_digits_much_smaller_than_the_biggest_bib_are_dropped():
    detections = [boxed("0800", 0.01), boxed("1234", 0.06), boxed("555", 0.029)]
    assert bibs_from_detections(detections, DEFAULT) == ["1234"]


def test_bibs_of_similar_height_are_all_kept():
    detections = [boxed("1234", 0.05), boxed("5678", 0.06), boxed("910", 0.031)]
    assert bibs_from_detections(detections, DEFAULT) == ["1234", "5678", "910"]


def test_height_counts_only_among_bib_candidates():
    # A big banner word, or a big number under the threshold, does not make the bibs small.
    detections = [boxed("FINISH", 0.3), boxed("2024", 0.3, confidence=60), boxed("1234", 0.05)]
    assert bibs_from_detections(detections, DEFAULT) == ["1234"]


def test_detections_without_a_box_are_never_dropped_for_height():
    detections = [boxed("1234", 0.2), TextDetection("5678", 95.0)]
    assert bibs_from_detections(detections, DEFAULT) == ["1234", "5678"]


def test_the_same_bib_found_big_and_small_is_kept():
    assert bibs_from_detections([boxed("1234", 0.01), boxed("1234", 0.06)], DEFAULT) == ["1234"]


def test_height_ratio_zero_keeps_every_size():
    rules = BibRules(min_height_ratio=0.0)
    assert bibs_from_detections([boxed("0800", 0.01), boxed("1234", 0.06)], rules) == ["0800", "1234"]


def test_split_number_lines_count_for_height():
    detections = [boxed("12 34", 0.06, kind="LINE"), boxed("0800", 0.01)]
    assert bibs_from_detections(detections, DEFAULT) == ["1234"]


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_height_ratio_outside_zero_to_one_is_a_configuration_error(ratio):
    from chalicelib.domain.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="BIB_MIN_HEIGHT_RATIO"):
        BibRules(min_height_ratio=ratio)


def test_excluded_texts_are_matched_whatever_the_case_a_runner_types():
    rules = BibRules(excluded=("X1234",))

    assert normalise_bib("x1234", rules) is None
    assert normalise_bib("X1234", rules) is None
    assert normalise_bib("x1235", rules) == "1235"


def test_a_candidate_exactly_at_the_height_floor_is_kept():
    tall = TextDetection("1234", 99.0, box=TextBox(0.1, 0.1, 0.2, 0.2))
    at_floor = TextDetection("5678", 99.0, box=TextBox(0.5, 0.1, 0.1, 0.1))

    assert bibs_from_detections([tall, at_floor], BibRules(min_height_ratio=0.5)) == ["1234", "5678"]


def test_a_height_ratio_of_one_is_allowed_and_keeps_only_the_tallest():
    tall = TextDetection("1234", 99.0, box=TextBox(0.1, 0.1, 0.2, 0.2))
    shorter = TextDetection("5678", 99.0, box=TextBox(0.5, 0.1, 0.1, 0.19))

    assert bibs_from_detections([tall, shorter], BibRules(min_height_ratio=1.0)) == ["1234"]
