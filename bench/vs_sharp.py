"""The preprocess step against sharp, the reference system's preprocess (`--vs-sharp`, issue 12).

Both run as whole processes (interpreter or node start, imports, read, decode, resize, encode,
ThumbHash, write) on the same camera-like 24 MP photo, alternating run by run so background load
hits both alike; wall time is the median of the runs after one warm-up run each, peak RSS the
largest of the runs (from GNU time). Quality: SSIM on luma of each output against the source
fully decoded and resized with LANCZOS to the output's size.

Everything else is built once in a scratch folder outside the repository (default
~/.cache/snaprace-bench):

- `photo24.jpg`: see `build_photo`; deterministic, never committed.
- `lambda-venv/`: a virtualenv with requirements.txt only, as the Lambda zip. The project's process
  runs there, not in the dev .venv: when numpy is installed, Pillow 10.4 imports numpy.typing on
  every `import PIL.Image` (PIL/_typing.py), 0.12-0.15 s per process here that Lambda never pays.
- `sharp/`: sharp and thumbhash from npm, and `bench/sharp_preprocess.js` copied beside them.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from chalicelib.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCRATCH = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "snaprace-bench"
SHARP = "sharp@0.33.5"
THUMBHASH_JS = "thumbhash@0.1.1"
# Only for its bundled photographs (CC0, public domain or without known copyright restrictions,
# per skimage/data/_fetchers.py), read from the wheel: scikit-image is not installed or imported.
SKIMAGE_WHEEL = "scikit-image==0.26.0"

# --- the photo -------------------------------------------------------------------------------

WIDTH, HEIGHT = 6000, 4000
TILE_WIDTH, TILE_HEIGHT = 1500, 1000
SEED = 12
COLOUR_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "rocket.jpg",
    "retina.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
)
# Greyscale photos, tinted so every tile has colour: (name, RGB gains).
GREY_PHOTOS = (
    ("grass.png", (0.75, 1.0, 0.55)),
    ("gravel.png", (1.0, 0.9, 0.75)),
    ("brick.png", (1.0, 0.7, 0.6)),
    ("camera.png", (1.0, 1.0, 1.0)),
    ("moon.png", (0.95, 0.95, 1.0)),
    ("coins.png", (1.0, 0.9, 0.7)),
    ("clock_motion.png", (0.9, 0.95, 1.0)),
)
TEXTURES = ("grass.png", "gravel.png", "brick.png")


def build_photo(photos: zipfile.ZipFile) -> bytes:
    """Return a camera-like 6000x4000 JPEG (q92, 4:2:0, EXIF) built from real photographs.

    A flat synthetic image flatters every encoder, so: a 4x4 collage of scikit-image's 16 bundled
    photos (3:2 crops upscaled 1.1-3x with LANCZOS); the high-pass of tiled grass, gravel and brick
    photos added at native scale with a per-tile strength, since upscaling leaves no fine detail;
    a camera's sharpening (unsharp mask 1.2 px, 60 %); sensor noise (luma sigma 3, chroma 1.5).
    """
    rng = np.random.default_rng(SEED)
    sources: list[tuple[str, tuple[float, float, float] | None]] = [(name, None) for name in COLOUR_PHOTOS]
    sources += GREY_PHOTOS
    canvas = Image.new("RGB", (WIDTH, HEIGHT))
    for index, source in enumerate(rng.permutation(len(sources))):
        name, tint = sources[source]
        column, row = index % 4, index // 4
        canvas.paste(_tile(photos, name, tint), (column * TILE_WIDTH, row * TILE_HEIGHT))

    pixels = np.asarray(canvas, np.float32)
    detail = np.zeros((HEIGHT, WIDTH), np.float32)
    for name in TEXTURES:
        texture = _read(photos, name).convert("L")
        tiled = Image.new("L", (WIDTH, HEIGHT))
        for y in range(0, HEIGHT, texture.height):
            for x in range(0, WIDTH, texture.width):
                tiled.paste(texture, (x, y))
        high_pass = np.asarray(tiled, np.float32) - np.asarray(
            tiled.filter(ImageFilter.GaussianBlur(2)), np.float32
        )
        detail += high_pass * rng.uniform(0.2, 0.5)
    strength = np.kron(rng.uniform(0.2, 1.0, (4, 4)), np.ones((TILE_HEIGHT, TILE_WIDTH), np.float32))
    pixels += (detail * strength.astype(np.float32))[..., None]
    canvas = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    canvas = canvas.filter(ImageFilter.UnsharpMask(radius=1.2, percent=60, threshold=1))

    pixels = np.asarray(canvas, np.float32)
    pixels += rng.normal(0, 3.0, (HEIGHT, WIDTH, 1)).astype(np.float32)
    pixels += rng.normal(0, 1.5, (HEIGHT, WIDTH, 3)).astype(np.float32)
    photo = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")

    exif = Image.Exif()
    exif[0x0112] = 1  # Orientation: upright
    exif[0x010F] = "SnapRace bench"  # Make
    exif[0x8769] = {0x9003: "2024:05:12 09:31:07"}  # Exif IFD: DateTimeOriginal
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=92, subsampling="4:2:0", exif=exif.tobytes())
    return buffer.getvalue()


def _read(photos: zipfile.ZipFile, name: str) -> Image.Image:
    return Image.open(io.BytesIO(photos.read(f"skimage/data/{name}")))


def _tile(photos: zipfile.ZipFile, name: str, tint: tuple[float, float, float] | None) -> Image.Image:
    """Return photo `name` centre-cropped to 3:2 and resized to one tile, tinted if greyscale."""
    image = _read(photos, name).convert("L" if tint else "RGB")
    width, height = image.size
    if width / height > 1.5:
        crop = round(height * 1.5)
        image = image.crop(((width - crop) // 2, 0, (width - crop) // 2 + crop, height))
    else:
        crop = round(width / 1.5)
        image = image.crop((0, (height - crop) // 2, width, (height - crop) // 2 + crop))
    image = image.resize((TILE_WIDTH, TILE_HEIGHT), Image.Resampling.LANCZOS)
    if tint is None:
        return image
    tinted = np.asarray(image, np.float32)[..., None] * np.array(tint, np.float32)
    return Image.fromarray(np.clip(tinted, 0, 255).astype(np.uint8), "RGB")


def photo(scratch: Path) -> Path:
    """Return the path of the bench photo in `scratch`, building it on first use."""
    path = scratch / "photo24.jpg"
    if path.exists():
        return path
    wheels = scratch / "wheels"
    if not list(wheels.glob("scikit_image-*.whl")):
        _log(f"downloading the {SKIMAGE_WHEEL} wheel for its bundled photos")
        download = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        _check_call([*download, "--dest", str(wheels), SKIMAGE_WHEEL])
    _log("building the 24 MP photo")
    with zipfile.ZipFile(next(wheels.glob("scikit_image-*.whl"))) as photos:
        data = build_photo(photos)
    path.write_bytes(data)
    return path


# --- the two processes -----------------------------------------------------------------------


def lambda_python(scratch: Path) -> Path:
    """Return the python of a virtualenv with requirements.txt only, (re)built when it changed."""
    venv = scratch / "lambda-venv"
    python = venv / "bin" / "python"
    stamp = venv / "requirements.txt"
    wanted = (ROOT / "requirements.txt").read_text()
    if not stamp.exists() or stamp.read_text() != wanted:
        _log(f"building {venv} from requirements.txt")
        shutil.rmtree(venv, ignore_errors=True)
        _check_call([sys.executable, "-m", "venv", str(venv)])
        _check_call([str(python), "-m", "pip", "install", "--quiet", "-r", str(ROOT / "requirements.txt")])
        stamp.write_text(wanted)
    has_numpy = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util, sys; sys.exit(importlib.util.find_spec('numpy') is None)",
        ],
        check=False,
    )
    if has_numpy.returncode == 0:
        raise SystemExit(f"{venv} has numpy, which the Lambda zip does not: delete the folder")
    return python


def sharp_folder(scratch: Path) -> Path:
    """Return a folder with sharp and thumbhash installed and the reference script, installing once."""
    folder = scratch / "sharp"
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("--vs-sharp needs node and npm on PATH")
    wanted = {"sharp": SHARP, "thumbhash": THUMBHASH_JS}
    if any(_npm_version(folder, name) != spec.split("@")[1] for name, spec in wanted.items()):
        _log(f"installing {SHARP} and {THUMBHASH_JS} into {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "package.json").exists():
            (folder / "package.json").write_text('{"private": true}\n')
        _check_call(
            ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *wanted.values()], cwd=folder
        )
    shutil.copyfile(ROOT / "bench" / "sharp_preprocess.js", folder / "preprocess.js")
    return folder


def _npm_version(folder: Path, name: str) -> str | None:
    manifest = folder / "node_modules" / name / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


@dataclass
class Run:
    wall_s: float
    peak_rss_mb: float  # nan without GNU time
    stdout: str


# Peak RSS comes from GNU time, which forks the command itself. Measured from this process (wait4,
# getrusage) it would be wrong: a child's ru_maxrss keeps this process's peak across fork and exec.
GNU_TIME = "/usr/bin/time" if Path("/usr/bin/time").exists() else None


def run_once(command: list[str], env: dict[str, str] | None = None) -> Run:
    """Run `command` to completion; return its wall time, its peak RSS and its stdout."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "rss"
        if GNU_TIME:
            command = [GNU_TIME, "--format=%M", f"--output={report}", *command]
        start = time.perf_counter()
        child = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        if child.returncode:
            raise SystemExit(f"{' '.join(command)} failed:\n{child.stderr}")
        peak = int(report.read_text().split()[-1]) / 1024 if GNU_TIME else float("nan")  # %M: KiB
        return Run(wall, peak, child.stdout.strip())


class OtherLoad:
    """CPU cores kept busy by other processes while the block runs (Linux /proc/stat).

    Other work slows sharp's worker threads more than the single-threaded project, so a loaded
    machine flatters the project: the load is part of the result. Busy time of the whole machine,
    less this process's and its waited-for children's CPU time, over the wall time.
    """

    cores = float("nan")

    def __enter__(self) -> OtherLoad:
        self._start = (_machine_busy_s(), _own_cpu_s(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        busy, own, wall = (_machine_busy_s(), _own_cpu_s(), time.perf_counter())
        self.cores = max(0.0, (busy - self._start[0]) - (own - self._start[1])) / (wall - self._start[2])


def _machine_busy_s() -> float:
    # First line of /proc/stat: cpu user nice system idle iowait irq softirq steal ... (clock ticks)
    ticks = [int(field) for field in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    own = os.times()
    return own.user + own.system + own.children_user + own.children_system


# --- quality ---------------------------------------------------------------------------------


def luma(image: Image.Image) -> np.ndarray:
    """Return ITU-R BT.601 luma of `image` as float64."""
    rgb = np.asarray(image.convert("RGB"), np.float64)
    return rgb @ np.array([0.299, 0.587, 0.114])


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Return the mean SSIM of two luma images (Wang et al. 2004: Gaussian window 11, sigma 1.5).

    Equal to scikit-image's structural_similarity(a, b, data_range=255, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False): only windows wholly inside the image count.
    """
    taps = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    taps /= taps.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mean_a, mean_b = _window(a, taps), _window(b, taps)
    var_a = _window(a * a, taps) - mean_a**2
    var_b = _window(b * b, taps) - mean_b**2
    covariance = _window(a * b, taps) - mean_a * mean_b
    numerator = (2 * mean_a * mean_b + c1) * (2 * covariance + c2)
    denominator = (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    return float((numerator / denominator).mean())


def _window(image: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Return the separable weighted mean of every full window ('valid' convolution)."""
    n = len(taps)
    height, width = image.shape
    rows = sum(taps[i] * image[:, i : width - n + 1 + i] for i in range(n))
    return sum(taps[i] * rows[i : height - n + 1 + i, :] for i in range(n))


class Reference:
    """The source decoded at full resolution, resized with LANCZOS to each output's size, as luma."""

    def __init__(self, source: Path) -> None:
        image = Image.open(source)
        image.load()
        self._upright = ImageOps.exif_transpose(image).convert("RGB")
        self._lumas: dict[tuple[int, int], np.ndarray] = {}

    def ssim(self, jpeg: Path) -> float:
        output = Image.open(jpeg)
        if output.size not in self._lumas:
            self._lumas[output.size] = luma(self._upright.resize(output.size, Image.Resampling.LANCZOS))
        return ssim(self._lumas[output.size], luma(output))


# --- the comparison --------------------------------------------------------------------------


def deployed_settings() -> Settings:
    """Return the prod stage's settings from .chalice/config.json (what the Lambda function reads)."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    env = {**config["environment_variables"], **config["stages"]["prod"]["environment_variables"]}
    return Settings.from_env(env)


def compare(runs: int, scratch: Path) -> None:
    """Print one line: the project's preprocess against sharp's on the bench photo."""
    if scratch.resolve().is_relative_to(ROOT):
        raise SystemExit(f"--scratch must be outside the repository: {scratch}")
    scratch.mkdir(parents=True, exist_ok=True)
    source = photo(scratch)
    settings = deployed_settings()
    outputs = {"project": scratch / "out-project.jpg", "sharp": scratch / "out-sharp.jpg"}
    limits = (settings.max_width, settings.jpeg_quality, settings.max_image_pixels)
    python = lambda_python(scratch)
    project = [str(python), str(ROOT / "bench" / "preprocess_once.py"), str(source), str(outputs["project"])]
    folder = sharp_folder(scratch)
    commands = {
        "project": ([*project, *map(str, limits)], _project_env(scratch)),
        "sharp": (["node", str(folder / "preprocess.js"), str(source), str(outputs["sharp"])], None),
    }

    with Image.open(source) as image:
        width, height = image.size
    mb_per_mp = source.stat().st_size / (width * height)
    _log(
        f"photo {source}: {width}x{height}, {source.stat().st_size / 1e6:.2f} MB, {mb_per_mp:.3f} MB/MP"
        + ("" if 0.3 <= mb_per_mp <= 0.6 else " (NOT camera-like: expected 0.3-0.6 MB/MP)")
    )
    _log(
        f"project: process_image (width {settings.max_width}, q{settings.jpeg_quality}, prod settings) "
        f"in {python}, a venv with requirements.txt only, like the Lambda zip (no numpy)"
    )
    _log(f"sharp: {SHARP} and {THUMBHASH_JS} in {folder}; 1 warm-up run each, then {runs} interleaved runs")

    hashes = {name: run_once(*command).stdout for name, command in commands.items()}  # warm-up
    timed: dict[str, list[Run]] = {name: [] for name in commands}
    with OtherLoad() as other:
        for round_ in range(runs):
            for name in list(commands) if round_ % 2 == 0 else reversed(list(commands)):
                timed[name].append(run_once(*commands[name]))

    reference = Reference(source)
    wall, size, quality, peak_rss = {}, {}, {}, {}
    for name, output in outputs.items():
        walls = [run.wall_s for run in timed[name]]
        wall[name] = statistics.median(walls)
        peak_rss[name] = max(run.peak_rss_mb for run in timed[name])
        size[name] = output.stat().st_size
        quality[name] = reference.ssim(output)
        with Image.open(output) as image:
            _log(
                f"{name}: {image.width}x{image.height}, thumbhash {hashes[name]}, "
                f"wall {min(walls) * 1000:.0f}-{max(walls) * 1000:.0f} ms"
            )
    wall_ratio, bytes_ratio = wall["project"] / wall["sharp"], size["project"] / size["sharp"]
    missed = [
        label
        for label, ok in (
            ("wall", wall_ratio <= 0.5),
            ("bytes", bytes_ratio <= 1.0),
            ("ssim", quality["project"] >= quality["sharp"]),
        )
        if not ok
    ]
    print(
        f"wall_ratio={wall_ratio:.2f} bytes_ratio={bytes_ratio:.3f} "
        f"ssim_project={quality['project']:.4f} ssim_sharp={quality['sharp']:.4f} "
        f"project_ms={wall['project'] * 1000:.0f} sharp_ms={wall['sharp'] * 1000:.0f} "
        f"bytes_project={size['project']} bytes_sharp={size['sharp']} mb_per_mp={mb_per_mp:.3f} "
        f"project_peak_rss_mb={peak_rss['project']:.0f} sharp_peak_rss_mb={peak_rss['sharp']:.0f} "
        f"runs={runs} other_load={other.cores:.1f} target={'missed:' + ','.join(missed) if missed else 'met'}",
        flush=True,
    )


def _project_env(scratch: Path) -> dict[str, str]:
    """Return the environment of the project's process: chalicelib importable, bytecode cached.

    Python's default is to cache bytecode; here the cache goes to the scratch folder, and an
    inherited PYTHONDONTWRITEBYTECODE (which would make every run compile chalicelib, ~4 ms) is
    dropped. Node compiles sharp's JavaScript on every run either way.
    """
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(scratch / "pycache")}


def _check_call(command: list[str], cwd: Path | None = None) -> None:
    subprocess.run(command, cwd=cwd, check=True, stdout=sys.stderr)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
