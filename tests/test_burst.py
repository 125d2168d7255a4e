"""`python -m sandbox burst`: the summary line, its arithmetic, and a small burst end to end."""

from __future__ import annotations

import re

import boto3
import pytest

from sandbox.__main__ import main
from sandbox.burst import BurstResult, burst_photo, parse_summary_line, quota_bound, run_burst
from sandbox.quota import RateQuota
from sandbox.runtime import ENGINES, Ports, Sandbox

FIELDS = [
    "photos",
    "processed",
    "failed",
    "lost",
    "bibs_fallbacks",
    "faces_fallbacks",
    "throttled_calls",
    "rekognition_calls_per_photo",
    "photos_per_s",
    "quota_bound_photos_per_s",
    "efficiency",
    "bibs_correct",
    "faces_correct",
]


def result(**changes) -> BurstResult:
    values = {
        "photos": 100,
        "processed": 98,
        "failed": 1,
        "lost": 1,
        "bibs_fallbacks": 30,
        "faces_fallbacks": 20,
        "bibs_correct": 68,
        "faces_correct": 78,
        "throttled_calls": 400,
        "rekognition_calls": 606,
        "seconds": 49.5,
        "quota_bound_photos_per_s": 5.0,
    }
    return BurstResult(**{**values, **changes})


def test_the_summary_line_names_every_field_in_order():
    line = result().summary_line()
    assert "\n" not in line
    assert [field.split("=")[0] for field in line.split(" ")] == FIELDS
    assert parse_summary_line(line) == {
        "photos": "100",
        "processed": "98",
        "failed": "1",
        "lost": "1",
        "bibs_fallbacks": "30",
        "faces_fallbacks": "20",
        "throttled_calls": "400",
        "rekognition_calls_per_photo": "6.06",
        "photos_per_s": "2.00",  # 99 accounted for in 49.5 s
        "quota_bound_photos_per_s": "5.00",
        "efficiency": "0.400",  # three decimals: 0.895 and 0.904 differ at the 0.90 target
        "bibs_correct": "68",
        "faces_correct": "78",
    }


def test_without_a_quota_there_is_no_bound_and_no_efficiency():
    fields = parse_summary_line(result(quota_bound_photos_per_s=None).summary_line())
    assert (fields["quota_bound_photos_per_s"], fields["efficiency"]) == ("unlimited", "n/a")


@pytest.mark.parametrize(
    ("quota", "bound"),
    [
        (None, None),
        (RateQuota(5), 5),
        (RateQuota(5, {"IndexFaces": 2}), 2),
        (RateQuota(None, {"DetectText": 3}), 3),
        (RateQuota(None, {"SearchFacesByImage": 1, "CreateCollection": 0.1}), None),  # not per photo
    ],
)
def test_the_quota_bound_is_the_tightest_per_photo_operation(quota, bound):
    assert quota_bound(quota) == bound


def test_every_burst_photo_has_its_own_bib_and_people_repeat():
    photos = [burst_photo(index) for index in range(200)]
    assert len({bib for bib, _ in photos}) == 200
    assert len({person for _, person in photos}) == 50


def test_a_small_burst_without_a_quota_accounts_for_every_photo():
    line = run_burst(6, quota=None, timeout=120, retry_sleep_scale=0.01).summary_line()
    fields = parse_summary_line(line)
    assert list(fields) == FIELDS
    assert {name: fields[name] for name in ("photos", "processed", "failed", "lost")} == {
        "photos": "6",
        "processed": "6",
        "failed": "0",
        "lost": "0",
    }
    assert fields["bibs_fallbacks"] == fields["faces_fallbacks"] == fields["throttled_calls"] == "0"
    assert fields["bibs_correct"] == fields["faces_correct"] == "6"
    assert float(fields["photos_per_s"]) > 0
    assert (fields["quota_bound_photos_per_s"], fields["efficiency"]) == ("unlimited", "n/a")
    # Per photo: one DetectText and one IndexFaces, plus the first IndexFaces of the event that
    # finds no collection, and CreateCollection (more than once when photos race to create it).
    assert 2 < float(fields["rekognition_calls_per_photo"]) <= 2 + 2 * 6 / 6


def test_a_sandbox_starts_from_nothing_even_after_another_in_this_process():
    # moto keeps its state in process globals: without a reset the second burst of a process
    # found the first one's photos and reported them, with no Rekognition call, as its own.
    for _ in range(2):
        with Sandbox(
            ports=Ports.free(), engines=ENGINES["synthetic"], max_running_executions=None
        ) as running:
            assert running.resources is not None
            s3, bucket = boto3.client("s3"), running.resources.bucket
            assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
            s3.put_object(Bucket=bucket, Key="leftover/from-the-first.txt", Body=b"x")


ZEROS = ("failed", "lost", "bibs_fallbacks", "faces_fallbacks")


def test_a_small_paced_burst_under_a_quota_loses_and_degrades_nothing():
    # The event-day run in miniature (`burst --photos 500 --rekognition-tps 1.2` in the README):
    # the app paced to the quota, its functions in a worker process. The zeros, not the speed.
    photos = 16
    fields = parse_summary_line(run_burst(photos, quota=RateQuota(2), timeout=300).summary_line())
    assert {name: fields[name] for name in ZEROS} == dict.fromkeys(ZEROS, "0"), fields
    assert fields["processed"] == fields["bibs_correct"] == fields["faces_correct"] == str(photos)
    assert fields["quota_bound_photos_per_s"] == "2.00"
    assert float(fields["efficiency"]) > 0


def test_an_unpaced_burst_is_throttled_and_its_retries_still_lose_nothing():
    # Without pacing every photo's calls arrive at once: Rekognition throttles most of them, and
    # the state machine's throttling retries (real waits) still bring every photo through whole.
    photos = 8
    result = run_burst(photos, quota=RateQuota(1), pace=False, timeout=300)
    fields = parse_summary_line(result.summary_line())
    assert int(fields["throttled_calls"]) > 0, fields
    assert {name: fields[name] for name in ZEROS} == dict.fromkeys(ZEROS, "0"), fields
    assert fields["processed"] == fields["bibs_correct"] == fields["faces_correct"] == str(photos)


def test_the_command_line_refuses_a_quota_that_means_nothing(capsys):
    with pytest.raises(SystemExit):
        main(["burst", "--photos", "3", "--rekognition-tps", "DetectTxt=5"])
    assert re.search(r"DetectTxt.*is not an operation", capsys.readouterr().err)
