"""Start lists, near-miss correction, name search and "did you mean" (pure rules)."""

from __future__ import annotations

import pytest

from chalicelib.domain.bibs import BibRules
from chalicelib.domain.errors import InvalidStartList
from chalicelib.domain.runners import (
    Runner,
    check_reads,
    find_runners,
    one_edit,
    parse_start_list,
    suggestions,
)

RULES = BibRules()


@pytest.mark.parametrize(
    ("a", "b", "near"),
    [
        ("1026", "10264", True),  # a missing edge digit
        ("0159", "10159", True),
        ("10254", "10264", True),  # one misread digit
        ("1064", "10264", True),  # a missing inner digit
        ("10264", "10264", False),  # the same bib is no edit
        ("102", "10264", False),
        ("12345", "12354", False),  # a swap is two edits
    ],
)
def test_one_edit(a, b, near):
    assert one_edit(a, b) is near and one_edit(b, a) is near


def test_a_near_miss_is_corrected_only_when_one_listed_bib_is_that_close():
    checked = check_reads(["1026", "311"], {"10264", "311", "500"})
    assert checked.bibs == ("10264", "311")
    assert checked.corrections == ({"read": "1026", "bib": "10264"},)
    assert checked.unlisted == ()
    ambiguous = check_reads(["1026"], {"10264", "10265"})
    assert ambiguous.bibs == () and ambiguous.unlisted == ("1026",) and ambiguous.corrections == ()


def test_a_one_or_two_character_fragment_is_never_corrected():
    checked = check_reads(["13", "7"], {"163", "17"})
    assert checked.bibs == () and checked.corrections == () and checked.unlisted == ("13", "7")


def test_unlisted_reads_are_dropped_from_the_bibs_and_kept_aside():
    checked = check_reads(["999", "311", "311"], {"311"})
    assert checked.bibs == ("311",) and checked.unlisted == ("999",)


def test_a_start_list_parses_with_or_without_header_and_category():
    text = "bib,name,category\n10264,Ada Lovelace,F40\n A311 , Alan Turing \n\n0042,Grace Hopper,\n"
    assert parse_start_list(text, RULES) == [
        Runner("10264", "Ada Lovelace", "F40"),
        Runner("311", "Alan Turing", None),
        Runner("0042", "Grace Hopper", None),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no runners"),
        ("10264\n", "line 1: expected bib,name"),
        ("10264,Ada\n10264,Alan\n", "line 2: bib 10264 is listed twice"),
        ("12,Ada\n", "line 1: '12' is not a bib"),
        ("101,a,b,c\n", "line 1: expected"),
    ],
)
def test_a_malformed_start_list_names_the_problem(text, problem):
    with pytest.raises(InvalidStartList, match=problem):
        parse_start_list(text, RULES)


def test_suggestions_are_bibs_one_edit_away_with_photos_most_first():
    counts = {"1234": 2, "1235": 5, "1284": 9, "123": 1, "12345": 0, "4321": 3}
    assert suggestions("1236", counts) == [
        {"bib": "1235", "photo_count": 5},
        {"bib": "1234", "photo_count": 2},
        {"bib": "123", "photo_count": 1},
    ]
    assert suggestions("9999", counts) == []


def test_at_most_three_suggestions():
    counts = {f"12{d}0": 1 for d in range(10)}
    assert len(suggestions("1200", counts)) == 3


def test_a_name_search_matches_word_starts_ignoring_case_and_accents():
    runners = [Runner("1", "Zoë Dupont"), Runner("2", "Zoe Martin"), Runner("3", "Anne Zoellner")]
    assert [r.bib for r in find_runners("zoe", runners)] == ["3", "1", "2"]
    assert [r.bib for r in find_runners("zoe dup", runners)] == ["1"]
    assert find_runners("  ", runners) == [] and find_runners("xavier", runners) == []
