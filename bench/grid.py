"""Bytes per gallery grid page (30 photos): the grid rendition against the reference's approaches.

Run from the repo root: `.venv/bin/python -m bench.grid [--runs N]`.

Photos: the camera-like 24 MP photo of bench/preprocess.py, plus every portrait in
../shared/eval-data/faces-dev whose long side is at least 1000 px (real photos, read in place).
Each goes through the real Preprocess code (chalicelib.domain.imaging.process_image). A page is 30
tiles: the mean bytes per photo times 30.

Compared:
- the reference's first approach, the 2048 px JPEG in every tile (what `url` is);
- the reference's second, a WebP transformed on request at the width its masonry grid asked for
  (640 px on screens up to 1280 px wide, 1024 px beyond; quality 75, the usual image-CDN default);
- the grid rendition (`thumb_url`), 512 px on the long side, as JPEG and as WebP at several
  qualities, with luma SSIM against the same pixels unencoded (bench/vs_sharp.py's SSIM), so the
  format is picked at equal quality.
Then the added Preprocess time: process_image on the 24 MP photo without and with the grid
rendition (median of N alternating runs).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench.preprocess import make_photo
from bench.vs_sharp import luma, ssim
from chalicelib.config import Settings
from chalicelib.domain.imaging import ProcessedImage, grid_rendition, process_image

FACES_DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "eval-data" / "faces-dev"
PAGE = 30
CANDIDATES = [("JPEG", 80), ("JPEG", 75), ("JPEG", 70), ("WEBP", 80), ("WEBP", 75), ("WEBP", 70)]
REFERENCE_WEBP = ((640, "up to 1280 px screens"), (1024, "wider screens"))
SETTINGS = Settings(table_name="-", state_machine_name="-")


@dataclass
class Source:
    name: str
    pixels: Image.Image  # the 2048 px copy's pixels, as Preprocess made them
    jpeg_2048: int  # bytes of the 2048 px JPEG


def corpus() -> list[Source]:
    """Return the photos, each through the real Preprocess step."""
    raws = [("synthetic-24mp", make_photo())]
    if FACES_DEV.is_dir():
        for path in sorted(FACES_DEV.glob("*.jpg")):
            with Image.open(path) as image:
                if max(image.size) >= 1000:
                    raws.append((path.name, path.read_bytes()))
    sources = []
    for name, raw in raws:
        processed = _process(raw, grid_side=0)
        pixels = Image.open(io.BytesIO(processed.jpeg)).convert("RGB")
        sources.append(Source(name, pixels, len(processed.jpeg)))
    return sources


def _process(raw: bytes, *, grid_side: int) -> ProcessedImage:
    return process_image(
        raw,
        max_width=SETTINGS.max_width,
        jpeg_quality=SETTINGS.jpeg_quality,
        max_pixels=SETTINGS.max_image_pixels,
        grid_side=grid_side,
        grid_format=SETTINGS.grid_format,
        grid_quality=SETTINGS.grid_quality,
    )


def webp_at_width(image: Image.Image, width: int, quality: int = 75) -> int:
    """Bytes of `image` resized to `width` (never enlarged) and encoded as WebP: the on-request transform."""
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=quality)
    return len(buffer.getvalue())


def candidate(sources: list[Source], fmt: str, quality: int) -> tuple[float, float, float]:
    """Return (mean bytes, mean SSIM, mean encode ms) of a grid rendition setting."""
    sizes, scores, times = [], [], []
    for source in sources:
        start = time.perf_counter()
        rendition = grid_rendition(source.pixels, SETTINGS.grid_side, fmt, quality)
        times.append((time.perf_counter() - start) * 1000)
        reference = source.pixels.resize((rendition.width, rendition.height), Image.Resampling.LANCZOS)
        decoded = Image.open(io.BytesIO(rendition.data))
        sizes.append(len(rendition.data))
        scores.append(ssim(luma(reference), luma(decoded)))
    return statistics.mean(sizes), statistics.mean(scores), statistics.mean(times)


def added_time(runs: int) -> tuple[float, float]:
    """Return median ms of Preprocess on the 24 MP photo without and with the grid rendition."""
    raw = make_photo()
    timings: dict[int, list[float]] = {0: [], SETTINGS.grid_side: []}
    for side in timings:
        _process(raw, grid_side=side)  # warm-up
    for _ in range(runs):
        for side, found in timings.items():
            start = time.perf_counter()
            _process(raw, grid_side=side)
            found.append((time.perf_counter() - start) * 1000)
    return statistics.median(timings[0]), statistics.median(timings[SETTINGS.grid_side])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed runs for the added Preprocess time")
    args = parser.parse_args()

    sources = corpus()
    print(f"photos: {len(sources)} ({sources[0].name} and {len(sources) - 1} faces-dev portraits >= 1000 px)")
    chosen = f"{SETTINGS.grid_format} q{SETTINGS.grid_quality}"
    ours, _, _ = candidate(sources, SETTINGS.grid_format, SETTINGS.grid_quality)

    print(f"\ngrid rendition candidates ({SETTINGS.grid_side} px long side), mean per photo:")
    print(f"  {'setting':<10} {'bytes':>8} {'SSIM':>7} {'encode ms':>10}")
    for fmt, quality in CANDIDATES:
        size, score, ms = candidate(sources, fmt, quality)
        mark = "  <- configured" if (fmt, quality) == (SETTINGS.grid_format, SETTINGS.grid_quality) else ""
        print(f"  {fmt + ' q' + str(quality):<10} {size:>8.0f} {score:>7.4f} {ms:>10.1f}{mark}")

    page_ours = ours * PAGE
    rows = [("grid rendition, " + chosen + f", {SETTINGS.grid_side} px", page_ours)]
    rows.append(
        ("reference: 2048 px JPEG q87 in every tile", statistics.mean(s.jpeg_2048 for s in sources) * PAGE)
    )
    for width, screens in REFERENCE_WEBP:
        mean = statistics.mean(webp_at_width(s.pixels, width) for s in sources)
        rows.append((f"reference: WebP q75 on request, {width} px ({screens})", mean * PAGE))
    print(f"\nbytes per grid page of {PAGE} photos:")
    for label, page in rows:
        print(f"  {label:<58} {page / 1024:>8.0f} KiB  {page / page_ours:>5.2f}x ours")

    without, with_grid = added_time(args.runs)
    print(
        f"\nPreprocess, 24 MP photo (median of {args.runs}): {without:.0f} ms without the grid rendition,"
        f" {with_grid:.0f} ms with it: +{with_grid - without:.0f} ms (+{(with_grid / without - 1) * 100:.1f} %)"
    )


if __name__ == "__main__":
    main()
