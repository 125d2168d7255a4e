"""Synthetic OCR and face engines for scale runs: deterministic, milliseconds per call.

They read what a generated photo (synthetic_photo, below) says about itself: a bib number
and a person id, drawn in pixels (the pipeline strips metadata, so nothing else survives) as a row
of flat grey squares in the top-left corner:

    [white] [black] [n] [bib digit] x n [m] [person digit] x m [check]

Each square is one cell, 1/64 of the image width (25 px at 1600 px), one cell in from the top and
left edges; a digit d is grey level 20 + 22 d (20, 42, ..., 218), n and m are the digit counts
(n ≤ 6, m ≤ 6, either may be 0) and the check square is (n + m + every digit) mod 10. Only the
middle half of each square is read, so JPEG ringing at the edges between squares does not matter;
the levels are 22 apart and a flat 25 px square survives JPEG q90 (twice: upload and the
pipeline's re-encode) within a few levels. Cells are measured in widths, so a resized copy still
decodes. A photo without the white-black start, or whose squares are not all digit levels, or whose
check fails, carries no code: the engines then see no text and no face.

Decoding is a JPEG decode at half scale in greyscale (libjpeg scales while decoding) and the mean
of a few small crops: a few milliseconds for a 1600x1067 photo.

What the engines answer:
- OCR: the bib as one LINE and one WORD (its ParentId the LINE), Confidence 99, the box around
  the bib's squares; nothing when the photo has no code or no bib.
- Faces: one face for the encoded person (a fixed box, Confidence 99.9, high quality) whose
  embedding is derived from the person id: similarity 100 for the same person (the same
  embedding), falling to 0 at cosine 0.9; two different ids are 64 pseudo-random dimensions
  apart (cosine about 0 ± 0.13), so they score 0 in practice.

synthetic_photo(bib, person) makes such a photo in about 10 ms: 1600x1067 JPEG q90 of one
background rendered once per process (gradients and blurred noise from a fixed seed, about
390 KB, the bytes per megapixel of a real photo) with the code drawn on a copy. Photos of other
origin (the sample scenes, real uploads) carry no code.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import random
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, ImageFilter, ImageStat, UnidentifiedImageError

CELLS_PER_WIDTH = 64
PHOTO_SIZE = (1600, 1067)
JPEG_QUALITY = 90
MAX_DIGITS = 6
START = (250, 0)  # grey levels of the two start squares
TEXT_CONFIDENCE = 99.0
FACE_CONFIDENCE = 99.9
FACE_BOX = {"left": 0.42, "top": 0.18, "width": 0.12, "height": 0.2}  # fractions of the image
TEXT_MODEL_VERSION = "3.0"
_EMBEDDING_SIZE = 64
_TOLERANCE = 8  # grey levels a square may drift and still read as its digit (levels are 22 apart)
_START_TOLERANCE = 16


class UndecodableImage(ValueError):
    """The bytes are not an image Pillow can decode (the service answers InvalidImageFormatException)."""


class UnencodableValue(ValueError):
    """A bib or person id the code cannot carry (bibs: 1-6 digits; people: 0-999999)."""


@dataclass(frozen=True)
class Code:
    """What a generated photo carries, and where its bib squares are (fractions of the image)."""

    bib: str | None
    person: int | None
    bib_box: tuple[float, float, float, float] | None  # left, top, width, height


@dataclass(frozen=True)
class SyntheticFace:
    left: float
    top: float
    width: float
    height: float
    confidence: float
    quality: int
    embedding: tuple[float, ...]


def level(digit: int) -> int:
    """The grey level that encodes `digit`."""
    return 20 + 22 * digit


def paint_code(image: Image.Image, bib: str | None, person: int | None) -> None:
    """Draw the code for `bib` and `person` onto `image` (in place); raise UnencodableValue."""
    bib_digits = _digits_of_bib(bib)
    person_digits = _digits_of_person(person)
    values = [
        *START,
        level(len(bib_digits)),
        *(level(d) for d in bib_digits),
        level(len(person_digits)),
        *(level(d) for d in person_digits),
        level(_check(bib_digits, person_digits)),
    ]
    cell = image.width / CELLS_PER_WIDTH
    draw = ImageDraw.Draw(image)
    for index, grey in enumerate(values):
        left, top, right, bottom = _cell_box(index, cell)
        draw.rectangle(
            (round(left), round(top), round(right) - 1, round(bottom) - 1), fill=(grey, grey, grey)
        )


def read_code(data: bytes) -> Code | None:
    """Return the code a photo carries, or None; raise UndecodableImage for bytes that are no image."""
    image = _greyscale(data)
    cell = image.width / CELLS_PER_WIDTH
    cells_in_height = image.height / cell
    if cells_in_height < 2:
        return None
    reader = _CellReader(image, cell)
    if abs(reader.mean(0) - START[0]) > _START_TOLERANCE or abs(reader.mean(1) - START[1]) > _START_TOLERANCE:
        return None
    bib_count = reader.digit(2)
    if bib_count is None or bib_count > MAX_DIGITS:
        return None
    bib_digits = [reader.digit(3 + i) for i in range(bib_count)]
    person_at = 3 + bib_count
    person_count = reader.digit(person_at)
    if person_count is None or person_count > MAX_DIGITS:
        return None
    person_digits = [reader.digit(person_at + 1 + i) for i in range(person_count)]
    check = reader.digit(person_at + 1 + person_count)
    if None in bib_digits or None in person_digits or check is None:
        return None
    bibs = [d for d in bib_digits if d is not None]
    people = [d for d in person_digits if d is not None]
    if check != _check(bibs, people):
        return None
    box = None
    if bibs:
        left, top, _, bottom = _cell_box(3, cell)
        right = _cell_box(2 + bib_count, cell)[2]
        box = (
            left / image.width,
            top / image.height,
            (right - left) / image.width,
            (bottom - top) / image.height,
        )
    return Code(
        bib="".join(str(d) for d in bibs) or None,
        person=int("".join(str(d) for d in people)) if people else None,
        bib_box=box,
    )


class SyntheticOcr:
    """DetectText over the code: the encoded bib, or nothing."""

    def detect_text(self, image: bytes) -> dict[str, Any]:
        code = read_code(image)
        if code is None or code.bib is None or code.bib_box is None:
            return {"TextDetections": [], "TextModelVersion": TEXT_MODEL_VERSION}
        geometry = _geometry(*code.bib_box)
        return {
            "TextDetections": [
                {
                    "DetectedText": code.bib,
                    "Type": "LINE",
                    "Id": 0,
                    "Confidence": TEXT_CONFIDENCE,
                    "Geometry": geometry,
                },
                {
                    "DetectedText": code.bib,
                    "Type": "WORD",
                    "Id": 1,
                    "ParentId": 0,
                    "Confidence": TEXT_CONFIDENCE,
                    "Geometry": geometry,
                },
            ],
            "TextModelVersion": TEXT_MODEL_VERSION,
        }


class SyntheticFaces:
    """Face detection over the code: one face per encoded person."""

    def detect(self, image: bytes) -> list[SyntheticFace]:
        code = read_code(image)
        if code is None or code.person is None:
            return []
        return [
            SyntheticFace(**FACE_BOX, confidence=FACE_CONFIDENCE, quality=3, embedding=embedding(code.person))
        ]

    def similarity(self, a: tuple[float, ...], b: tuple[float, ...]) -> float:
        """100 for the same person; 0 from a squared distance of 0.2 (cosine 0.9) on."""
        squared = sum((x - y) ** 2 for x, y in zip(a, b, strict=True))
        return max(0.0, 100.0 - 500.0 * squared)


def embedding(person: int) -> tuple[float, ...]:
    """The person's unit-length embedding (the same for every photo of them)."""
    digest = hashlib.sha512(f"synthetic-person-{person}".encode()).digest()
    raw = [byte - 127.5 for byte in digest[:_EMBEDDING_SIZE]]
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    return tuple(value / norm for value in raw)


def synthetic_photo(bib: str | None, person: int | None) -> bytes:
    """A generated race photo (JPEG) carrying `bib` and `person` for the synthetic engines."""
    image = _background().copy()
    paint_code(image, bib, person)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def synthetic_engines() -> tuple[SyntheticOcr, SyntheticFaces]:
    """The (ocr, faces) pair the sandbox's local Rekognition runs on."""
    return SyntheticOcr(), SyntheticFaces()


class _CellReader:
    def __init__(self, image: Image.Image, cell: float) -> None:
        self._image = image
        self._cell = cell

    def mean(self, index: int) -> float:
        left, top, right, bottom = _cell_box(index, self._cell)
        inset = self._cell / 4
        box = (round(left + inset), round(top + inset), round(right - inset), round(bottom - inset))
        if box[2] > self._image.width or box[2] <= box[0] or box[3] <= box[1]:
            return -1000.0  # off the image: reads as nothing
        return float(ImageStat.Stat(self._image.crop(box)).mean[0])

    def digit(self, index: int) -> int | None:
        grey = self.mean(index)
        digit = round((grey - 20) / 22)
        if 0 <= digit <= 9 and abs(grey - level(digit)) <= _TOLERANCE:
            return digit
        return None


def _cell_box(index: int, cell: float) -> tuple[float, float, float, float]:
    # One cell of margin from the top and left edges: edge pixels are where encoders and resizers differ.
    left = cell * (1 + index)
    return left, cell, left + cell, 2 * cell


def _greyscale(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        if image.format == "JPEG":
            # Decode straight to luminance at half size: libjpeg does the averaging, for a fraction of the cost.
            image.draft("L", (image.width // 2, image.height // 2))
        return image.convert("L")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UndecodableImage(f"cannot decode the image: {exc}") from exc


def _digits_of_bib(bib: str | None) -> list[int]:
    if bib is None:
        return []
    if not re.fullmatch(rf"[0-9]{{1,{MAX_DIGITS}}}", bib):
        raise UnencodableValue(f"bib {bib!r}: the code carries 1-{MAX_DIGITS} digits")
    return [int(c) for c in bib]


def _digits_of_person(person: int | None) -> list[int]:
    if person is None:
        return []
    if not 0 <= person < 10**MAX_DIGITS:
        raise UnencodableValue(f"person {person}: the code carries ids 0-{10**MAX_DIGITS - 1}")
    return [int(c) for c in str(person)]


def _check(bib_digits: list[int], person_digits: list[int]) -> int:
    return (len(bib_digits) + len(person_digits) + sum(bib_digits) + sum(person_digits)) % 10


def _geometry(left: float, top: float, width: float, height: float) -> dict[str, Any]:
    right, bottom = left + width, top + height
    return {
        "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
        "Polygon": [
            {"X": left, "Y": top},
            {"X": right, "Y": top},
            {"X": right, "Y": bottom},
            {"X": left, "Y": bottom},
        ],
    }


@functools.cache
def _background() -> Image.Image:
    # Gradients in three directions plus blurred noise: enough texture that the JPEG is about as
    # big per megapixel as a real photo, so S3 and the pipeline move realistic bytes.
    width, height = PHOTO_SIZE
    ramp = Image.linear_gradient("L").resize((width, height))
    base = Image.merge(
        "RGB",
        (ramp, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT), ramp.transpose(Image.Transpose.ROTATE_180)),
    )
    seeded = random.Random(2025)  # the same photos every run: a run can be repeated byte for byte
    noise = Image.frombytes("L", PHOTO_SIZE, seeded.randbytes(width * height)).filter(
        ImageFilter.GaussianBlur(1.0)
    )
    return Image.blend(base, Image.merge("RGB", (noise, noise, noise)), 0.5)
