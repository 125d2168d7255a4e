"""The local Rekognition's per-operation TPS quota: token buckets on a fake clock, AWS's answer past
the quota, and the call counters."""

from __future__ import annotations

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib.adapters.rekognition import Rekognition
from chalicelib.domain.errors import ThrottlingException
from sandbox.engines.synthetic import SyntheticFaces, SyntheticOcr
from sandbox.quota import InvalidQuota, OperationLimiter, RateQuota, TokenBucket, parse_quota
from sandbox.rekognition_service import OPERATIONS, CallCount, LocalRekognition, ServiceError
from tests.support.rekognition import served
from tests.support.workflow import jpeg_bytes


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


def takes(bucket: TokenBucket, calls: int) -> list[bool]:
    return [bucket.take() for _ in range(calls)]


def test_a_bucket_admits_one_second_of_calls_at_once_then_throttles(clock):
    bucket = TokenBucket(5, clock=clock)
    assert takes(bucket, 6) == [True] * 5 + [False]


def test_a_bucket_refills_at_its_rate(clock):
    bucket = TokenBucket(5, clock=clock)
    takes(bucket, 5)
    clock.advance(0.1)  # half a token
    assert takes(bucket, 1) == [False]
    clock.advance(0.1)  # one token
    assert takes(bucket, 2) == [True, False]
    clock.advance(1.0)
    assert takes(bucket, 6) == [True] * 5 + [False]


def test_a_long_idle_bucket_holds_only_one_second_of_burst(clock):
    bucket = TokenBucket(3, clock=clock)
    clock.advance(3600)
    assert takes(bucket, 4) == [True, True, True, False]


def test_throttled_calls_take_no_token(clock):
    bucket = TokenBucket(2, clock=clock)
    takes(bucket, 2 + 50)  # a client hammering the quota does not push recovery further away
    clock.advance(0.5)
    assert takes(bucket, 2) == [True, False]


def test_a_rate_below_one_per_second_still_admits_single_calls(clock):
    bucket = TokenBucket(0.5, clock=clock)
    assert takes(bucket, 2) == [True, False]
    clock.advance(1.9)
    assert takes(bucket, 1) == [False]
    clock.advance(0.1)
    assert takes(bucket, 1) == [True]


def test_each_operation_has_its_own_bucket(clock):
    limiter = OperationLimiter(RateQuota(2), clock=clock)
    assert [limiter.admit("DetectText") for _ in range(3)] == [True, True, False]
    assert [limiter.admit("IndexFaces") for _ in range(3)] == [True, True, False]


def test_overrides_set_their_operations_and_the_rest_stay_unlimited(clock):
    limiter = OperationLimiter(RateQuota(None, {"IndexFaces": 1}), clock=clock)
    assert [limiter.admit("IndexFaces") for _ in range(2)] == [True, False]
    assert all(limiter.admit("DetectText") for _ in range(1000))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5", RateQuota(5.0)),
        ("0.5", RateQuota(0.5)),
        ("DetectText=5,IndexFaces=2", RateQuota(None, {"DetectText": 5.0, "IndexFaces": 2.0})),
        ("5, IndexFaces=2", RateQuota(5.0, {"IndexFaces": 2.0})),
        ("", None),
        (None, None),
    ],
)
def test_quota_text(text, expected):
    assert parse_quota(text, OPERATIONS) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0", "positive"),
        ("-1", "positive"),
        ("fast", "not a number"),
        ("DetectTxt=5", "not an operation"),
        ("5,6", "default rate twice"),
        ("=5", "names no operation"),
        ("inf", "positive"),
    ],
)
def test_quota_text_that_means_nothing_is_refused(text, problem):
    with pytest.raises(InvalidQuota, match=problem):
        parse_quota(text, OPERATIONS)


def service(quota=None, clock=None, objects=None):
    objects = objects if objects is not None else {}
    return LocalRekognition(
        SyntheticOcr(),
        SyntheticFaces(),
        lambda bucket, key, version: objects[(bucket, key)],
        quota=quota,
        **({"clock": clock} if clock else {}),
    )


def detect_text_request():
    return {"Image": {"S3Object": {"Bucket": "photos", "Name": "a.jpg"}}}


def test_past_the_quota_the_service_answers_throttling_and_counts_it(clock):
    local = service(RateQuota(2), clock, {("photos", "a.jpg"): jpeg_bytes()})
    local.handle("DetectText", detect_text_request())
    local.handle("DetectText", detect_text_request())
    with pytest.raises(ServiceError) as caught:
        local.handle("DetectText", detect_text_request())
    assert (caught.value.code, caught.value.message, caught.value.status) == (
        "ThrottlingException",
        "Rate exceeded",
        400,
    )
    clock.advance(0.5)
    local.handle("DetectText", detect_text_request())
    assert local.call_counts() == {"DetectText": CallCount(answered=3, throttled=1)}


def test_calls_answered_with_an_error_count_as_answered(clock):
    local = service(RateQuota(10), clock)
    with pytest.raises(ServiceError, match="does not exist"):
        local.handle("DescribeCollection", {"CollectionId": "missing"})
    with pytest.raises(ServiceError, match="not supported"):
        local.handle("StartFaceSearch", {})  # not an operation here: neither limited nor counted
    assert local.call_counts() == {"DescribeCollection": CallCount(answered=1, throttled=0)}


def test_without_a_quota_nothing_is_throttled():
    local = service(objects={("photos", "a.jpg"): jpeg_bytes()})
    for _ in range(50):
        local.handle("DetectText", detect_text_request())
    assert local.call_counts()["DetectText"] == CallCount(answered=50, throttled=0)


@pytest.fixture
def frozen_quota_client():
    """A client of a service with 1 call per second per operation and a clock that never moves."""
    objects = {("photos", "a.jpg"): jpeg_bytes()}
    local = service(RateQuota(1), FakeClock(), objects)
    # One attempt: the test sees the service's answer, not botocore's retries.
    with served(local, config=Config(retries={"total_max_attempts": 1})) as client:
        yield client, local


def test_botocore_raises_throttling_exception_as_for_aws(frozen_quota_client):
    client, local = frozen_quota_client
    client.detect_text(**detect_text_request())
    with pytest.raises(ClientError) as caught:
        client.detect_text(**detect_text_request())
    error = caught.value.response
    assert error["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    client.create_collection(CollectionId="acme-e1")  # another operation, another bucket
    assert local.call_counts() == {
        "DetectText": CallCount(answered=1, throttled=1),
        "CreateCollection": CallCount(answered=1, throttled=0),
    }


def test_the_apps_adapter_turns_it_into_its_throttling_error(frozen_quota_client):
    client, _ = frozen_quota_client
    adapter = Rekognition(client, "snaprace-test")
    adapter.detect_text("photos", "a.jpg")
    with pytest.raises(ThrottlingException, match="Rate exceeded"):
        adapter.detect_text("photos", "a.jpg")
