"""S3 key layout and identifier rules."""

from __future__ import annotations

import re

import pytest

from chalicelib.domain import keys
from chalicelib.domain.errors import InvalidKey


def test_parses_a_raw_key_whose_filename_has_slashes():
    raw = keys.parse_raw_key("acme/city-10k/raw/card 1/DCIM/IMG_0001.JPG")
    assert (raw.org_id, raw.event_id, raw.filename) == ("acme", "city-10k", "card 1/DCIM/IMG_0001.JPG")
    assert raw.original_filename == "IMG_0001.JPG"
    assert raw.key == "acme/city-10k/raw/card 1/DCIM/IMG_0001.JPG"


@pytest.mark.parametrize(
    "key",
    [
        "acme/city-10k/processed/01J.jpg",
        "acme/city-10k/raw/",
        "acme/city-10k/raw/folder/",
        "acme/raw/IMG.jpg",
        "acme/city-10k/IMG.jpg",
        "acme/city#10k/raw/IMG.jpg",
        "/city-10k/raw/IMG.jpg",
        "",
    ],
)
def test_rejects_keys_outside_the_raw_layout(key):
    with pytest.raises(InvalidKey):
        keys.parse_raw_key(key)


def test_event_keys_are_url_decoded_with_plus_as_space():
    assert (
        keys.decode_event_key("acme/e1/raw/my+photo%2B1%20%ED%95%9C.jpg") == "acme/e1/raw/my photo+1 한.jpg"
    )


def test_processed_key():
    assert keys.processed_key("acme", "e1", "01HX") == "acme/e1/processed/01HX.jpg"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("@Snap.Shooter", "snap.shooter"), ("  bob ", "bob"), ("@", None), ("", None), (None, None)],
)
def test_photographer_handles_are_normalised(given, expected):
    assert keys.normalise_handle(given) == expected


def test_collection_ids_are_distinct_for_distinct_stage_org_event_triples():
    # Ids may contain '-', '.' and '_': joined naively, ("a-b", "c") and ("a", "b-c") collide.
    parts = ["a", "b", "a-b", "b-c", "c", "a.b", "a_b", "1", "12", "a-b-c", "x" * 64]
    triples = [
        (stage, org, event) for stage in ("snaprace-dev", "snaprace-prod") for org in parts for event in parts
    ]
    ids = {keys.collection_id(*triple) for triple in triples}
    assert len(ids) == len(triples)
    assert keys.collection_id("snaprace-prod", "a-b", "c") != keys.collection_id("snaprace-prod", "a", "b-c")
    assert keys.collection_id("snaprace-dev", "acme", "e1") != keys.collection_id(
        "snaprace-prod", "acme", "e1"
    )


def test_collection_ids_start_with_the_stage_prefix_and_stay_valid():
    longest = keys.collection_id("snaprace-prod", "o" * 64, "e" * 64)
    assert len(longest) <= 255 and re.fullmatch(r"[A-Za-z0-9_.\-]+", longest)
    assert keys.collection_id("snaprace-prod", "acme", "city-10k") == "snaprace-prod.4.acme.city-10k"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IMG_0001.JPG", "IMG_0001.JPG"),
        ("Xmas run X.jpg", "Xmas run X.jpg"),
        ("race day.heic", "race day.heic"),
        ("C:\\Users\\ana\\finish line.png", "finish line.png"),
        ("albums/2025/start.jpeg", "start.jpeg"),
        ("été #1?.jpg", "_t_ _1_.jpg"),
        (" .hidden. ", "hidden.jpg"),
        ("notes", "notes.jpg"),
        ("", "photo.jpg"),
        ("folder/", "photo.jpg"),
    ],
)
def test_an_uploaded_file_name_becomes_a_key_safe_image_name(name, expected):
    assert keys.safe_filename(name, ".jpg") == expected


def test_a_long_file_name_is_cut_to_200_characters_keeping_its_image_suffix():
    assert keys.safe_filename("a" * 300 + ".jpg", ".jpg") == "a" * 196 + ".jpg"
    assert keys.safe_filename("a" * 300, ".webp") == "a" * 195 + ".webp"
    assert keys.safe_filename("a" * 196 + ".jpg", ".jpg") == "a" * 196 + ".jpg"


def test_a_handle_keeps_its_own_letters_after_the_at_sign():
    assert keys.normalise_handle("@Xena") == "xena"
    assert keys.normalise_handle("XX@x") == "xx@x"


@pytest.mark.parametrize("handle", ["ana", "a" * 64, "séb.photo", "@x"])
def test_valid_handles(handle):
    assert keys.is_valid_handle(handle)


@pytest.mark.parametrize("handle", ["", "a" * 65, "a b", "a#b", "a/b", "a\\b", "a\x00"])
def test_invalid_handles(handle):
    assert not keys.is_valid_handle(handle)


def test_a_collection_id_may_be_255_characters_and_no_longer():
    assert len(keys.collection_id("p" * 247, "ab", "e1")) == 255
    with pytest.raises(ValueError):
        keys.collection_id("p" * 248, "ab", "e1")


def test_a_short_collection_id_with_a_disallowed_character_is_refused():
    with pytest.raises(ValueError):
        keys.collection_id("snaprace dev", "ab", "e1")
