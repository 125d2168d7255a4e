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


class InvalidEventSettings(InvalidRequest):
    """An event's settings are missing, malformed or out of range."""


class InvalidStartList(InvalidRequest):
    """A start list is not CSV rows of `bib,name[,category]` with valid, distinct bibs."""


class InvalidName(InvalidRequest):
    """A runner-name search is empty or too long."""


class InvalidUploadRequest(InvalidRequest):
    """An upload request names no files, too many, or a file that cannot be accepted."""


class InvalidReprocessRequest(InvalidRequest):
    """A reprocess request names neither photo ids, failed photos nor all photos."""


class ConsentRequired(InvalidRequest):
    """A face route was called without the runner's explicit consent (`?consent=true`) (400)."""


class SelfieTooLarge(InvalidInput):
    """The selfie is larger than the configured byte limit (413)."""


class NoFaceInImage(InvalidInput):
    """The selfie shows no face to search with (422)."""


class CollectionNotFound(SnapRaceError):
    """The event has no face collection yet (Rekognition ResourceNotFoundException)."""


class PhotoNotFound(SnapRaceError):
    """No photo, processed or failed, has this id in this event (404)."""


class EventNotFound(SnapRaceError):
    """No such event, or it is not published: the public never learns which (404)."""


class UploadNotFound(SnapRaceError):
    """No upload with this id in this event (404)."""


class FacesDisabled(SnapRaceError):
    """The event is bib-only: faces are neither indexed nor searched (409)."""


class FacesExpired(SnapRaceError):
    """The event's face collection was deleted after its retention period (410)."""


class EventDeleted(SnapRaceError):
    """The event is being deleted, or was: it takes no uploads or changes (409)."""


# --- organiser authentication (app.py maps these to 401 and 403) -------------------------------


class Unauthenticated(SnapRaceError):
    """Base for requests without a valid organiser token (401)."""


class MissingToken(Unauthenticated):
    """No `Authorization: Bearer <token>` header."""


class InvalidToken(Unauthenticated):
    """The token is not one this deployment issued."""


class Forbidden(SnapRaceError):
    """Base for authenticated requests the token does not allow (403)."""


class TokenRevoked(Forbidden):
    """The token was revoked."""


class WrongOrganisation(Forbidden):
    """The token belongs to another organisation."""


# --- transient AWS conditions: Step Functions and SQS retry these -----------------------------


class TransientError(SnapRaceError):
    """Base for conditions a later retry may clear."""


class ThrottlingException(TransientError):
    """An AWS service throttled the call (Rekognition, Step Functions, S3 SlowDown)."""


class ProvisionedThroughputExceededException(TransientError):
    """DynamoDB or Rekognition refused the call for lack of throughput."""


class RekognitionUnavailable(TransientError):
    """Rekognition answered with a server fault (InternalServerError, ServiceUnavailable)."""


class TurnRefused(TransientError):
    """A paced Rekognition call's turn was over MAX_TURN_WAIT away: no call was made.

    Transient like throttling, but the state machine retries it on a budget of its own, longer
    than Rekognition's throttling: while fresh runs keep every turn taken (a burst, or refusals
    above the pace's spare share), a retried call would otherwise lose its turn again and again
    until its photo failed."""


class SlotTooFar(SnapRaceError):
    """A paced slot is further away than the caller will wait; nothing was reserved."""


class UnprocessedItemsError(TransientError):
    """BatchWriteItem left items unprocessed after every allowed attempt."""
