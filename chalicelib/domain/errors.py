"""Named errors for SnapRace.

Lambda reports an uncaught exception's class name as the Step Functions error name, so the class
names below are the `ErrorEquals` values in statemachine.json: renaming one is an API change.
"""

from __future__ import annotations


class SnapRaceError(Exception):
    """Base of every error SnapRace raises on purpose."""


class ConfigurationError(SnapRaceError):
    """A required environment variable is missing or malformed."""


# --- input that no retry can fix -------------------------------------------------------------


class InvalidInput(SnapRaceError):
    """Base for bad input: retrying cannot help."""


class InvalidKey(InvalidInput):
    """An S3 key does not follow the `{org_id}/{event_id}/raw/{filename}` layout."""


class NotAnS3Notification(InvalidInput):
    """An SQS message body is not an S3 event notification."""


class InvalidImage(InvalidInput):
    """Base for uploads that cannot become a processed photo."""


class EmptyImage(InvalidImage):
    """The uploaded object has zero bytes."""


class UnsupportedImageFormat(InvalidImage):
    """The bytes are not an image format the pipeline decodes (decided by content, not name)."""


class CorruptImage(InvalidImage):
    """The bytes look like an image but cannot be decoded (truncated, damaged)."""


class ImageTooLarge(InvalidImage):
    """The image exceeds the configured pixel or byte limit (decompression-bomb guard)."""


class RawObjectMissing(InvalidInput):
    """The raw object named by the execution input no longer exists."""


# --- search API requests (app.py maps each to an HTTP status) ---------------------------------


class InvalidRequest(InvalidInput):
    """Base for malformed API requests (400)."""


class InvalidId(InvalidRequest):
    """An organisation, event or photo id is malformed."""


class InvalidBib(InvalidRequest):
    """The bib is not a bib number under the stage's rules."""


class InvalidHandle(InvalidRequest):
    """The photographer handle is empty or has characters handles never have."""


class InvalidLimit(InvalidRequest):
    """`limit` is not an integer within the allowed range."""


class InvalidCursor(InvalidRequest):
    """`cursor` was not issued by this API for this listing, or was altered."""


class EmptyBody(InvalidRequest):
    """The request needs a body and has none."""


class SelfieTooLarge(InvalidInput):
    """The selfie is larger than the configured byte limit (413)."""


class NoFaceInImage(InvalidInput):
    """The selfie shows no face to search with (422)."""


class CollectionNotFound(SnapRaceError):
    """The event has no face collection yet (Rekognition ResourceNotFoundException)."""


class PhotoNotFound(SnapRaceError):
    """No photo, processed or failed, has this id in this event (404)."""


# --- transient AWS conditions: Step Functions and SQS retry these -----------------------------


class TransientError(SnapRaceError):
    """Base for conditions a later retry may clear."""


class ThrottlingException(TransientError):
    """An AWS service throttled the call (Rekognition, Step Functions, S3 SlowDown)."""


class ProvisionedThroughputExceededException(TransientError):
    """DynamoDB or Rekognition refused the call for lack of throughput."""


class UnprocessedItemsError(TransientError):
    """BatchWriteItem left items unprocessed after every allowed attempt."""
