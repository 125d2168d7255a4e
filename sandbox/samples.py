"""Licence-clean sample photos, generated at first run.

One real face (Eileen Collins' NASA portrait, public domain: see samples/SOURCE.md) composed into
drawn race scenes with printed bibs, so both searches have something to find: bib 1234 is on the
same runner in two photos (and her face is in both), another runner wears bib A0567, and one
photo shows both. A selfie crop of the face is written beside the photos, not among them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from chalicelib.domain.bibs import BibRules, normalise_bib

SOURCE = Path(__file__).with_name("samples") / "astronaut.jpg"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / ".sandbox" / "samples"


@dataclass(frozen=True)
class SampleSet:
    photos: Path  # folder to ingest
    selfie: Path  # a face crop to search with
    bibs: dict[str, list[str]]  # file name -> bibs printed in it
    faces: dict[str, int]  # file name -> how many times the sample face appears


SCENES = {
    # file: (runner placements: (bib text, with face?, x, scale)), capture time
    "finish-line-001.jpg": ([("1234", True, 120, 1.0)], "2025:05:04 08:15:30"),
    "finish-line-002.jpg": ([("1234", True, 700, 0.8), ("A0567", False, 150, 0.9)], "2025:05:04 08:15:41"),
    "course-km5-003.jpg": ([("A0567", False, 500, 1.1)], "2025:05:04 07:52:10"),
}


def ensure_samples(directory: Path = DEFAULT_DIR) -> SampleSet:
    """Generate the sample set under `directory` unless it is already there; return it."""
    photos = directory / "photos"
    selfie = directory / "selfie.jpg"
    photos.mkdir(parents=True, exist_ok=True)
    portrait = Image.open(SOURCE).convert("RGB")
    for name, (runners, captured) in SCENES.items():
        target = photos / name
        if not target.exists():
            target.write_bytes(_scene(portrait, runners, captured))
    if not selfie.exists():
        # The face region of the portrait, as a phone selfie would frame it.
        portrait.crop((120, 10, 340, 260)).resize((440, 500)).save(selfie, "JPEG", quality=90)
    return SampleSet(
        photos=photos,
        selfie=selfie,
        bibs={
            name: [normalise_bib(b, BibRules()) for b, *_ in runners] for name, (runners, _) in SCENES.items()
        },
        faces={name: sum(1 for _, face, *_ in runners if face) for name, (runners, _) in SCENES.items()},
    )


def _scene(portrait: Image.Image, runners, captured: str) -> bytes:
    width, height = 1600, 1067
    scene = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    scene = Image.blend(scene, Image.new("RGB", (width, height), (70, 120, 170)), 0.6)
    draw = ImageDraw.Draw(scene)
    draw.rectangle((0, int(height * 0.62), width, height), fill=(150, 75, 60))  # the track
    for lane in range(1, 6):
        y = int(height * 0.62) + lane * 70
        draw.line((0, y, width, y), fill=(235, 235, 235), width=4)
    for bib, with_face, x, scale in runners:
        _runner(scene, portrait, bib, with_face, x, scale)
    scene = scene.filter(ImageFilter.GaussianBlur(0.6))
    exif = Image.Exif()
    exif[0x8769] = {0x9003: captured}
    buffer = io.BytesIO()
    scene.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def _runner(
    scene: Image.Image, portrait: Image.Image, bib: str, with_face: bool, x: int, scale: float
) -> None:
    draw = ImageDraw.Draw(scene)
    top = 140
    if with_face:
        body = portrait.resize((int(512 * scale), int(512 * scale)))
        scene.paste(body, (x, top))
        torso_x, torso_y, torso_w = x + int(150 * scale), top + int(330 * scale), int(220 * scale)
    else:
        # A faceless runner: head, shirt and legs drawn as shapes.
        w = int(300 * scale)
        draw.ellipse((x + w // 3, top, x + 2 * w // 3, top + w // 3), fill=(90, 60, 40))
        draw.rectangle((x, top + w // 3, x + w, top + int(w * 1.4)), fill=(30, 90, 200))
        draw.rectangle(
            (x + w // 6, top + int(w * 1.4), x + w // 2 - 10, top + int(w * 2.2)), fill=(40, 40, 40)
        )
        draw.rectangle(
            (x + w // 2 + 10, top + int(w * 1.4), x + 5 * w // 6, top + int(w * 2.2)), fill=(40, 40, 40)
        )
        torso_x, torso_y, torso_w = x + w // 8, top + int(w * 0.55), int(w * 0.75)
    card_h = int(torso_w * 0.62)
    draw.rounded_rectangle(
        (torso_x, torso_y, torso_x + torso_w, torso_y + card_h),
        radius=8,
        fill=(250, 250, 250),
        outline=(20, 20, 20),
        width=3,
    )
    size = max(24, int(card_h * 0.62))
    while True:  # the biggest print that fits the card, as real bibs are printed
        font = ImageFont.load_default(size=size)
        left, upper, right, lower = draw.textbbox((0, 0), bib, font=font)
        if right - left <= torso_w * 0.88 or size <= 24:
            break
        size -= 4
    draw.text(
        (torso_x + (torso_w - (right - left)) / 2 - left, torso_y + (card_h - (lower - upper)) / 2 - upper),
        bib,
        fill=(10, 10, 10),
        font=font,
    )
