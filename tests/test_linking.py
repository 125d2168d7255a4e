"""Bib <-> face linking by geometry: a bib gets the face above it only when nobody else could own it."""

from __future__ import annotations

from chalicelib.domain.bibs import BibRead, TextBox
from chalicelib.domain.linking import link_faces
from chalicelib.domain.model import FaceBox, IndexedFace


def face(face_id: str, left: float, top: float = 0.1, size: float = 0.1) -> IndexedFace:
    return IndexedFace(face_id, FaceBox(left, top, size, size, 99.0))


def bib(number: str, left: float, top: float = 0.45, width: float = 0.1) -> BibRead:
    return BibRead(number, TextBox(left, top, width, 0.05))


def test_links_one_runners_bib_to_the_face_above_it():
    assert link_faces([bib("101", 0.2)], [face("f-a", 0.2)]) == {"101": "f-a"}


def test_two_runners_side_by_side_each_get_their_own_face():
    faces = [face("f-a", 0.1), face("f-b", 0.6)]
    assert link_faces([bib("101", 0.1), bib("202", 0.62)], faces) == {"101": "f-a", "202": "f-b"}


def test_a_neighbours_face_is_not_linked_to_a_bib_whose_runner_shows_no_face():
    # Runner A's face is turned away (not detected); B runs beside A, half a body to the side.
    assert link_faces([bib("101", 0.1)], [face("f-b", 0.4)]) == {}


def test_a_face_with_no_bib_below_it_is_linked_to_nothing():
    assert link_faces([bib("101", 0.1)], [face("f-a", 0.1), face("f-c", 0.7)]) == {"101": "f-a"}
    assert link_faces([], [face("f-c", 0.7)]) == {}


def test_two_faces_above_one_bib_link_neither():
    # A runner close behind stands over the same bib: ambiguous, so no link.
    faces = [face("f-a", 0.1, top=0.1), face("f-b", 0.12, top=0.25, size=0.08)]
    assert link_faces([bib("101", 0.1)], faces) == {}


def test_one_face_claimed_by_two_bibs_links_neither():
    faces = [face("f-a", 0.3)]
    assert link_faces([bib("101", 0.22), bib("202", 0.38)], faces) == {}


def test_a_bib_far_below_or_above_the_face_is_not_linked():
    assert link_faces([bib("101", 0.1, top=0.95)], [face("f-a", 0.1, top=0.05, size=0.05)]) == {}
    assert link_faces([bib("101", 0.1, top=0.05)], [face("f-a", 0.1, top=0.3)]) == {}


def test_a_bib_much_wider_or_narrower_than_the_face_is_not_linked():
    assert link_faces([bib("101", 0.0, width=0.5)], [face("f-a", 0.2, size=0.1)]) == {}
    assert link_faces([bib("101", 0.24, width=0.02)], [face("f-a", 0.2, size=0.1)]) == {}


def test_a_read_without_a_box_is_not_linked():
    assert link_faces([BibRead("101")], [face("f-a", 0.2)]) == {}
