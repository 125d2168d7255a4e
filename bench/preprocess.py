"""Benchmark the preprocess step against a naive Pillow pipeline on a 24-megapixel photo.

Run from the repo root: `.venv/bin/python -m bench.preprocess [--runs N]`.
Both pipelines are timed in this process on the same in-memory JPEG (median of N runs after a
warm-up). Peak RSS is measured for one photo in a fresh child process per pipeline, since this
process's own peak is dominated by generating the test photo and by memory it keeps after runs.

`--vs-sharp [--scratch DIR]` compares the step instead with sharp, the reference system's
preprocess, as whole processes on a camera-like photo (bench/vs_sharp.py).
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageOps

from chalicelib.config import Settings
from chalicelib.domain.imaging import process_image

WIDTH, HEIGHT = 6000, 4000
MAX_WIDTH = 2048
QUALITY = Settings.jpeg_quality
MAX_PIXELS = 120_000_000
CAPTURED = "2024:05:12 09:31:07"


def make_photo() -> bytes:
    """Return a camera-like 6000x4000 JPEG: sky gradient, textured ground, shapes, sensor grain."""
    sky = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    # Coarse texture (foliage, tarmac) from blurred noise upscaled, then fine grain on top.
    coarse = Image.effect_noise((WIDTH // 4, HEIGHT // 4), 80).filter(ImageFilter.GaussianBlur(1))
    coarse = coarse.resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC)
    grain = Image.effect_noise((WIDTH, HEIGHT), 30)
    red = Image.blend(sky, coarse, 0.45)
    green = Image.blend(sky.transpose(Image.Transpose.FLIP_TOP_BOTTOM), coarse, 0.5)
    blue = Image.radial_gradient("L").resize((WIDTH, HEIGHT))
    photo = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(photo)
    for i in range(40):  # "runners": solid shapes with hard edges
        x, y = 150 * i % (WIDTH - 400), 1800 + 37 * i % 1800
        colour = (60 * i % 256, 110 * i % 256, 170 * i % 256)
        draw.ellipse((x, y, x + 260, y + 700), fill=colour)
        draw.rectangle((x + 60, y + 200, x + 200, y + 320), fill=(250, 250, 250))
    grain_rgb = (grain, grain.transpose(Image.Transpose.FLIP_LEFT_RIGHT), grain)
    photo = Image.blend(photo, Image.merge("RGB", grain_rgb), 0.2)

    exif = Image.Exif()
    exif[0x0112] = 1  # Orientation: upright
    exif[0x010F] = "SnapRace bench"  # Make
    exif[0x8769] = {0x9003: CAPTURED}  # Exif IFD: DateTimeOriginal
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()


def run_step(data: bytes) -> bytes:
    """The pipeline's preprocess step."""
    return process_image(data, max_width=MAX_WIDTH, jpeg_quality=QUALITY, max_pixels=MAX_PIXELS).jpeg


def run_baseline(data: bytes) -> bytes:
    """The obvious Pillow code: full decode, exif_transpose, LANCZOS resize, save."""
    image = Image.open(io.BytesIO(data))
    image.load()
    image = ImageOps.exif_transpose(image)
    height = round(image.height * MAX_WIDTH / image.width)
    image = image.resize((MAX_WIDTH, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=QUALITY)
    return buffer.getvalue()


PIPELINES: dict[str, Callable[[bytes], bytes]] = {"step": run_step, "baseline": run_baseline}


def time_ms(runs: int, data: bytes) -> dict[str, list[float]]:
    """Return each pipeline's wall times in ms over `runs` runs, after a warm-up.

    The pipelines alternate run by run, so load from other processes hits both alike.
    """
    timings: dict[str, list[float]] = {name: [] for name in PIPELINES}
    for pipeline in PIPELINES.values():
        pipeline(data)
    for _ in range(runs):
        for name, pipeline in PIPELINES.items():
            start = time.perf_counter()
            pipeline(data)
            timings[name].append((time.perf_counter() - start) * 1000)
    return timings


def peak_rss_mb(name: str, data: bytes) -> tuple[float, float] | None:
    """Return (RSS at rest, peak RSS) in MB of a fresh process running pipeline `name` once."""
    child = subprocess.run(
        [sys.executable, "-m", "bench.preprocess", "--peak-rss-of", name],
        input=data,
        capture_output=True,
        check=True,
    )
    figures = child.stdout.split()
    return (float(figures[0]), float(figures[1])) if len(figures) == 2 else None


def print_peak_rss(name: str) -> None:
    """Child mode: run pipeline `name` once on the JPEG from stdin; print RSS at rest and peak."""
    data = sys.stdin.buffer.read()
    try:
        # Linux: writing 5 resets VmHWM (the peak) to the current RSS. getrusage's ru_maxrss is no
        # use here: across fork and exec it keeps the parent's peak.
        Path("/proc/self/clear_refs").write_text("5")
        at_rest = _vm_hwm_mb()
        PIPELINES[name](data)
        print(f"{at_rest:.1f} {_vm_hwm_mb():.1f}")
    except (OSError, ValueError):
        return


def _vm_hwm_mb() -> float:
    """Return this process's peak RSS since the last reset, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise ValueError("no VmHWM in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--vs-sharp", action="store_true", help="compare with sharp as whole processes (needs node and npm)"
    )
    parser.add_argument(
        "--scratch",
        type=Path,
        help="--vs-sharp's folder for the photo, the requirements.txt-only venv and sharp "
        "(default ~/.cache/snaprace-bench)",
    )
    parser.add_argument("--peak-rss-of", choices=sorted(PIPELINES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_rss_of:
        print_peak_rss(args.peak_rss_of)
        return
    if args.vs_sharp:
        from bench import vs_sharp  # numpy: only this mode needs it

        vs_sharp.compare(args.runs, args.scratch or vs_sharp.DEFAULT_SCRATCH)
        return

    data = make_photo()
    print(
        f"source: {WIDTH}x{HEIGHT} JPEG, {len(data) / 1e6:.1f} MB; target width {MAX_WIDTH}, "
        f"quality {QUALITY}; median of {args.runs} runs after a warm-up"
    )
    result = process_image(data, max_width=MAX_WIDTH, jpeg_quality=QUALITY, max_pixels=MAX_PIXELS)
    print(
        f"step output: {result.width}x{result.height}, {len(result.jpeg) / 1e3:.0f} kB, "
        f"captured_at={result.captured_at.isoformat() if result.captured_at else None}, "
        f"thumbhash={result.thumbhash}"
    )

    timings = time_ms(args.runs, data)
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, values in timings.items():
        print(
            f"{name:>8}: {medians[name]:7.1f} ms/photo (median; min {min(values):.1f}, max {max(values):.1f})"
        )
    ratio = medians["step"] / medians["baseline"]
    verdict = "meets" if ratio <= 0.5 else "misses"
    print(f"   ratio: {ratio:.2f} (step / baseline; {verdict} the <= 0.50 target)")

    for name in PIPELINES:
        rss = peak_rss_mb(name, data)
        if rss is None:
            print(f"{name:>8}: peak RSS unknown (no /proc/self/clear_refs)")
        else:
            print(
                f"{name:>8}: peak RSS {rss[1]:.0f} MB for one photo in a fresh process "
                f"(+{rss[1] - rss[0]:.0f} MB over {rss[0]:.0f} MB for imports and input)"
            )


if __name__ == "__main__":
    main()
