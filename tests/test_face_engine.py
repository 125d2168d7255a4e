"""The offline face engine (sandbox.engines.faces): detection, embeddings, similarity, quality.

dlib finds no face in a Pillow drawing and no installed package ships a face photo, so the photo
tests read three small portraits from ../shared/eval-data/faces-dev in place (never copied) and
are skipped when that folder is absent, except under CI=true, where its absence fails them. Timing lives in bench/faces_eval.py, not here.
"""

from __future__ import annotations

import io
import itertools
import threading
from pathlib import Path

import pytest
from PIL import Image

from sandbox.engines.faces import (
    Face,
    FaceEngine,
    UndecodableImage,
    detection_scale,
    distance,
    distance_for_similarity,
    model_dir,
    similarity_from_distance,
)
from tests.support.ci import skip_unless_ci

FACES_DEV = Path(__file__).resolve().parent.parent.parent / "shared" / "eval-data" / "faces-dev"
# Small files: two clearly matching photos of id06 (distance ~0.29) and one of id04.
SAME_A, SAME_B, OTHER = "img62.jpg", "img16.jpg", "img12.jpg"


@pytest.fixture(scope="module")
def photo() -> dict[str, bytes]:
    if not all((FACES_DEV / name).is_file() for name in (SAME_A, SAME_B, OTHER)):
        skip_unless_ci(
            f"eval photos not found in {FACES_DEV} (the shared eval-data folder beside the project)"
        )
    return {name: (FACES_DEV / name).read_bytes() for name in (SAME_A, SAME_B, OTHER)}


needs_photos = pytest.mark.usefixtures("photo")


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine()


@pytest.fixture(scope="module")
def faces(engine, photo) -> dict[str, list[Face]]:
    return {name: engine.detect(data) for name, data in photo.items()}


def _jpeg(image: Image.Image, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


# --- with photos ---------------------------------------------------------------------------


@needs_photos
def test_finds_one_face_in_a_portrait_with_its_box_inside_the_image(faces):
    [face] = faces[OTHER]
    assert 0.0 <= face.left < face.left + face.width <= 1.0
    assert 0.0 <= face.top < face.top + face.height <= 1.0
    assert face.width > 0.1 and face.height > 0.1
    assert 90.0 <= face.confidence <= 100.0
    assert face.passes("AUTO")
    assert len(face.embedding) == 128
    assert len(face.landmarks) == 5
    assert all(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 for x, y in face.landmarks)


@needs_photos
def test_a_face_is_about_100_similar_to_itself_detected_again(engine, photo, faces):
    [again] = engine.detect(photo[OTHER])
    assert engine.similarity(faces[OTHER][0], again) == pytest.approx(100.0, abs=0.01)
    assert engine.similarity(again.embedding, again.embedding) == 100.0


@needs_photos
def test_two_photos_of_one_person_score_above_85(engine, faces):
    assert engine.similarity(faces[SAME_A][0], faces[SAME_B][0]) > 85.0


@needs_photos
def test_two_different_people_score_below_85(engine, faces):
    assert engine.similarity(faces[SAME_A][0], faces[OTHER][0]) < 85.0
    assert engine.similarity(faces[SAME_B][0].embedding, faces[OTHER][0].embedding) < 85.0


@needs_photos
def test_decodes_by_content_not_by_name(engine, photo, faces):
    with Image.open(io.BytesIO(photo[OTHER])) as image:
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
    [face] = engine.detect(buffer.getvalue())
    assert engine.similarity(face, faces[OTHER][0]) > 99.0


@needs_photos
def test_applies_the_exif_orientation_of_a_raw_selfie(engine, photo, faces):
    with Image.open(io.BytesIO(photo[OTHER])) as image:
        stored = image.convert("RGB").transpose(Image.Transpose.ROTATE_90)  # lying on its side
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view": undoes the rotation above
    [face] = engine.detect(_jpeg(stored, exif=exif.tobytes()))
    assert face.width < face.height * 1.5  # an upright box
    assert engine.similarity(face, faces[OTHER][0]) > 95.0


@needs_photos
def test_concurrent_calls_give_the_same_faces(engine, photo, faces):
    results: list[list[Face]] = []

    def detect() -> None:
        results.append(engine.detect(photo[SAME_A]))

    threads = [threading.Thread(target=detect) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    assert results[0] == results[1] == faces[SAME_A]


# --- without photos ------------------------------------------------------------------------


def test_an_image_without_a_face_has_no_faces(engine):
    gradient = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
    assert engine.detect(_jpeg(gradient)) == []


def test_bytes_that_are_no_image_are_refused(engine):
    with pytest.raises(UndecodableImage, match="not a decodable image"):
        engine.detect(b"%PDF-1.7 not a photo")


def test_similarity_falls_as_distance_grows():
    distances = [step / 100 for step in range(151)]
    similarities = [similarity_from_distance(d) for d in distances]
    assert similarities[0] == 100.0
    assert all(a >= b for a, b in itertools.pairwise(similarities))
    assert all(a > b for a, b in itertools.pairwise(similarities[:111]))  # strictly, until it reaches 0
    assert similarities[-1] == 0.0


def test_calibration_anchors():
    assert similarity_from_distance(0.42) == pytest.approx(99.0)
    assert similarity_from_distance(0.52) == pytest.approx(85.0)
    assert similarity_from_distance(0.60) == pytest.approx(73.8)  # dlib's usual 0.6 tolerance: below 80
    for similarity in (99.5, 99.0, 90.0, 85.0, 80.0, 1.0):
        assert similarity_from_distance(distance_for_similarity(similarity)) == pytest.approx(similarity)


def test_distance_takes_faces_or_embeddings_of_equal_length():
    assert distance((0.0, 3.0), (4.0, 0.0)) == 5.0
    with pytest.raises(ValueError, match="differ in length"):
        distance((0.0,) * 128, (0.0,) * 3)


def test_quality_filter_levels():
    def face(quality: int) -> Face:
        return Face(0.1, 0.1, 0.2, 0.2, 99.0, quality, 50.0, 50.0, 100, (), (0.0,) * 128)

    assert face(0).passes("NONE") and not face(0).passes("AUTO") and not face(0).passes("LOW")
    assert face(1).passes("auto") and not face(1).passes("MEDIUM")
    assert face(2).passes("MEDIUM") and not face(2).passes("HIGH")
    assert face(3).passes("HIGH")
    with pytest.raises(ValueError, match="unknown quality filter"):
        face(1).passes("BEST")


def test_detection_scale_follows_rekognitions_minimum_face_size():
    assert detection_scale(720, 480) == 2.0  # small race photo: 40 px faces, HOG's 80 px window
    assert detection_scale(1920, 1080) == 2.0
    assert detection_scale(2048, 1365) == pytest.approx(80 / (40 * 1365 / 1080))
    assert detection_scale(6000, 4000) < 1.0  # a raw camera file is scanned smaller


def test_finds_the_model_files_on_disk():
    folder = model_dir()
    assert (folder / "dlib_face_recognition_resnet_model_v1.dat").is_file()
    assert (folder / "shape_predictor_5_face_landmarks.dat").is_file()
