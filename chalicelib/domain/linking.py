"""Bib <-> face linking by geometry (pure): which face in a photo belongs to the runner wearing a bib.

A runner's face sits above their bib: below it by one to a few face heights (neck and chest), about
as wide (a bib is roughly shoulder-narrow, a face box a little narrower), and not far to the side
(runners turn). A bib is linked to a face only when that face is its one candidate and the face is
a candidate for no other bib read in the photo: two runners side by side each get their own face,
and a bib with two faces above it (a runner close behind) gets none. A wrong link would put one
runner's photos on another's bib search, so ambiguity always means no link.

Boxes are fractions of the image's width and height; the ratios below are of face width/height,
so they hold for any image size. The bounds are wide on purpose: measured on labelled race photos
(RBNR set 1, 100 bibs) the bib top is 1.5-4.2 face heights below the face bottom, the bib is
0.5-1.2 face widths wide and its centre is within 1.2 face widths of the face's; detector face
boxes are tighter than hand-drawn ones, which lengthens the gap and widens the ratio.
"""

from __future__ import annotations

from collections.abc import Sequence

from chalicelib.domain.bibs import BibRead
from chalicelib.domain.model import IndexedFace

# Bib top below face bottom, in face heights.
MIN_GAP, MAX_GAP = 0.3, 6.0
# Bib width over face width.
MIN_WIDTH_RATIO, MAX_WIDTH_RATIO = 0.4, 3.0
# Horizontal distance between the centres, in face widths.
MAX_OFFSET = 1.3


def is_candidate(read: BibRead, face: IndexedFace) -> bool:
    """Return True if `face` could be the face of the runner wearing `read`'s bib.

    Widths are compared with widths and heights with heights, so the image's aspect cancels out.
    """
    bib, box = read.box, face.box
    if bib is None or box.width <= 0 or box.height <= 0:
        return False
    gap = (bib.top - (box.top + box.height)) / box.height
    if not MIN_GAP <= gap <= MAX_GAP:
        return False
    ratio = bib.width / box.width
    if not MIN_WIDTH_RATIO <= ratio <= MAX_WIDTH_RATIO:
        return False
    offset = abs((bib.left + bib.width / 2) - (box.left + box.width / 2)) / box.width
    return offset <= MAX_OFFSET


def link_faces(reads: Sequence[BibRead], faces: Sequence[IndexedFace]) -> dict[str, str]:
    """Return {bib: face_id} for the bibs whose runner's face is unambiguous in the photo."""
    candidates = {read.bib: [face.face_id for face in faces if is_candidate(read, face)] for read in reads}
    claims: dict[str, int] = {}
    for face_ids in candidates.values():
        for face_id in face_ids:
            claims[face_id] = claims.get(face_id, 0) + 1
    return {
        bib: face_ids[0]
        for bib, face_ids in candidates.items()
        if len(face_ids) == 1 and claims[face_ids[0]] == 1
    }
