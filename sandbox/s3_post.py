"""S3's browser-form upload rules (POST Object with a POST policy), for the sandbox's moto server.

moto's S3 stores any `multipart/form-data` POST to a bucket without reading its policy, so a
presigned POST that real S3 refuses (another key, a content type the policy does not allow, a body
outside `content-length-range`, a field no condition covers, an expired policy, a bad signature)
would be stored in the sandbox. `check_post_policy` applies S3's rules to one form, as written in
the AWS documentation ("Creating a POST policy", "POST Object"); `PostPolicyGate` is WSGI
middleware that runs it on every such POST and answers with S3's XML error document, or passes the
form on to moto; `install_post_policy_gate` puts the gate in front of a running ThreadedMotoServer.

Not deployed: the app never sees this module (it lives outside chalicelib/).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import ipaddress
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value
from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)

# Fields S3 does not expect a condition for: the file, the policy and its signature (SigV4's
# x-amz-signature; SigV2's signature and AWSAccessKeyId), and anything the form marks x-ignore-.
_EXEMPT_FIELDS = frozenset({"file", "policy", "x-amz-signature", "signature", "awsaccesskeyid"})
_IGNORED_PREFIX = "x-ignore-"

# The documentation allows starts-with only on some fields: never on bucket, success_action_status
# or the x-amz-* fields other than x-amz-meta-* (the SigV4 fields, x-amz-security-token, ...).
_EXACT_ONLY_FIELDS = frozenset({"bucket", "success_action_status"})

_MISSING_FIELD = "Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."


class PostPolicyError(Exception):
    """S3's refusal of a POST upload: an error code, HTTP status and message (plus S3's extra
    elements, such as ProposedSize and MaxSizeAllowed), rendered by `to_xml`."""

    def __init__(self, code: str, status: int, message: str, extra: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.extra = tuple(extra)

    def to_xml(self) -> bytes:
        """Return S3's error document for this error."""
        elements = [("Code", self.code), ("Message", self.message), *self.extra]
        body = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in elements)
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<Error>{body}</Error>'.encode()


def _access_denied(reason: str) -> PostPolicyError:
    return PostPolicyError("AccessDenied", 403, f"Invalid according to Policy: {reason}")


def _invalid_policy(reason: str) -> PostPolicyError:
    return PostPolicyError("InvalidPolicyDocument", 400, f"Invalid Policy: {reason}")


def _missing_field(name: str) -> PostPolicyError:
    return PostPolicyError(
        "InvalidArgument",
        400,
        _MISSING_FIELD.format(name=name),
        (("ArgumentName", name), ("ArgumentValue", "")),
    )


# --- the checker ---------------------------------------------------------------------------------


def check_post_policy(
    fields: Mapping[str, str],
    content_length: int,
    bucket: str,
    *,
    now: datetime,
    secret_key: str | None,
    allow_sigv2: bool = False,
) -> None:
    """Check one POST upload form against its policy as S3 does; return None if S3 would store it.

    `fields` are the form fields before the file (names in any case), `content_length` is the size
    of the file, `bucket` the bucket the form was posted to. A form without a policy is not checked
    (S3 decides an anonymous upload by the bucket's permissions). The signature is verified when
    `secret_key` is given. SigV2 forms (AWSAccessKeyId, signature) are refused unless `allow_sigv2`:
    S3 does not accept SigV2 on buckets created after June 2020, which every SnapRace bucket is.

    Raises PostPolicyError: InvalidArgument (a required field is missing), InvalidRequest (SigV2),
    SignatureDoesNotMatch, InvalidPolicyDocument (the policy cannot be read), AccessDenied (expired,
    a condition failed, a field no condition covers), EntityTooLarge / EntityTooSmall.
    """
    names = {name.lower(): name for name in fields}
    form = {name.lower(): value for name, value in fields.items()}
    if not form.get("key"):
        raise _missing_field("key")
    policy_text = form.get("policy")
    if policy_text is None:
        return
    _check_signature(form, policy_text, secret_key=secret_key, allow_sigv2=allow_sigv2)
    document = _read_policy(policy_text)
    _check_expiration(document, now)
    conditions = _read_conditions(document)

    covered: set[str] = set()
    ranges: list[tuple[int, int]] = []
    for condition in conditions:
        if isinstance(condition, _Range):
            ranges.append((condition.minimum, condition.maximum))
            continue
        covered.add(condition.field)
        value = bucket if condition.field == "bucket" else form.get(condition.field)
        if value is None or not condition.matches(value):
            raise _access_denied(f"Policy Condition failed: {condition.text}")

    extra = [name for name in form if name not in covered and not _exempt(name)]
    if extra:
        raise _access_denied(f"Extra input fields: {names[extra[0]]}")

    for minimum, maximum in ranges:
        if content_length > maximum:
            raise PostPolicyError(
                "EntityTooLarge",
                400,
                "Your proposed upload exceeds the maximum allowed size",
                (("ProposedSize", str(content_length)), ("MaxSizeAllowed", str(maximum))),
            )
        if content_length < minimum:
            raise PostPolicyError(
                "EntityTooSmall",
                400,
                "Your proposed upload is smaller than the minimum allowed size",
                (("ProposedSize", str(content_length)), ("MinSizeAllowed", str(minimum))),
            )


def _exempt(name: str) -> bool:
    return name in _EXEMPT_FIELDS or name.startswith(_IGNORED_PREFIX)


def _check_signature(
    form: Mapping[str, str], policy: str, *, secret_key: str | None, allow_sigv2: bool
) -> None:
    if "x-amz-signature" in form:
        for name in ("x-amz-algorithm", "x-amz-credential", "x-amz-date"):
            if name not in form:
                raise _missing_field(name)
        if secret_key is not None:
            expected = sigv4_policy_signature(policy, form["x-amz-credential"], secret_key)
            if not hmac.compare_digest(expected, form["x-amz-signature"].lower()):
                raise _signature_mismatch()
        return
    if "signature" in form or "awsaccesskeyid" in form:
        if not allow_sigv2:
            raise PostPolicyError(
                "InvalidRequest",
                400,
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
            )
        for name, label in (("awsaccesskeyid", "AWSAccessKeyId"), ("signature", "signature")):
            if name not in form:
                raise _missing_field(label)
        if secret_key is not None:
            expected = sigv2_policy_signature(policy, secret_key)
            if not hmac.compare_digest(expected, form["signature"]):
                raise _signature_mismatch()
        return
    # A policy with no signature at all: S3 asks for the SigV4 signature of a SigV4-looking form,
    # else for SigV2's access key field.
    sigv4 = any(name in form for name in ("x-amz-algorithm", "x-amz-credential", "x-amz-date"))
    raise _missing_field("x-amz-signature" if sigv4 else "AWSAccessKeyId")


def _signature_mismatch() -> PostPolicyError:
    return PostPolicyError(
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    )


def sigv4_policy_signature(policy: str, credential: str, secret_key: str) -> str:
    """Return the SigV4 signature (hex) of a base64 policy for `credential`
    (`<access key>/<yyyymmdd>/<region>/<service>/aws4_request`).

    Raises PostPolicyError (InvalidArgument) for a credential not in that shape.
    """
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not re.fullmatch(r"\d{8}", parts[1]):
        raise PostPolicyError(
            "InvalidArgument",
            400,
            f"Invalid credential: {credential!r}",
            (("ArgumentName", "x-amz-credential"), ("ArgumentValue", credential)),
        )
    _, date, region, service, terminal = parts
    key = f"AWS4{secret_key}".encode()
    for scope in (date, region, service, terminal):
        key = hmac.new(key, scope.encode(), hashlib.sha256).digest()
    return hmac.new(key, policy.encode(), hashlib.sha256).hexdigest()


def sigv2_policy_signature(policy: str, secret_key: str) -> str:
    """Return the SigV2 signature (base64 HMAC-SHA1) of a base64 policy."""
    digest = hmac.new(secret_key.encode(), policy.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _read_policy(policy: str) -> dict[str, Any]:
    try:
        text = base64.b64decode(policy, validate=True).decode("utf-8")
        document = json.loads(_unescape_policy(text))
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise _invalid_policy("Invalid JSON.") from exc
    if not isinstance(document, dict):
        raise _invalid_policy("Invalid JSON.")
    return document


def _unescape_policy(text: str) -> str:
    # The documentation's escapes include \$ and \v, which JSON does not have.
    replacements = {"$": "$", "v": "\\u000b"}
    return re.sub(r"\\(.)", lambda m: replacements.get(m.group(1), m.group(0)), text)


def _check_expiration(document: Mapping[str, Any], now: datetime) -> None:
    if "expiration" not in document:
        raise _invalid_policy("Policy missing expiration.")
    raw = document["expiration"]
    try:
        expiration = datetime.fromisoformat(raw)
    except (TypeError, ValueError) as exc:
        raise _invalid_policy(f"Invalid 'expiration' value: '{raw}'") from exc
    if expiration.tzinfo is None:
        expiration = expiration.replace(tzinfo=UTC)  # S3's expiration is GMT
    if now > expiration:
        raise _access_denied("Policy expired.")


@dataclass(frozen=True)
class _Match:
    """An `eq` or `starts-with` condition on one form field (lowercased, without `$`)."""

    operator: str
    field: str
    value: str
    text: str  # as S3 quotes it in "Policy Condition failed: ..."

    def matches(self, actual: str) -> bool:
        if self.operator == "eq":
            return actual == self.value
        if not _allows_starts_with(self.field):
            return False  # the documentation gives this field exact matching only
        # S3 reads a Content-Type with commas as a list: every item must start with the prefix.
        items = actual.split(",") if self.field == "content-type" else [actual]
        return all(item.startswith(self.value) for item in items)


@dataclass(frozen=True)
class _Range:
    minimum: int
    maximum: int


def _read_conditions(document: Mapping[str, Any]) -> list[_Match | _Range]:
    if "conditions" not in document:
        raise _invalid_policy("Policy missing conditions.")
    conditions = document["conditions"]
    if not isinstance(conditions, list):
        raise _invalid_policy("Invalid 'conditions' value: must be a List.")
    return [_read_condition(condition) for condition in conditions]


def _read_condition(condition: Any) -> _Match | _Range:
    if isinstance(condition, dict):
        if len(condition) != 1:
            raise _invalid_policy(
                "Invalid Simple-Condition: Simple-Conditions must have exactly one property specified."
            )
        ((name, value),) = condition.items()
        if not isinstance(value, str):
            raise _invalid_policy("Invalid Simple-Condition: value must be a string.")
        return _Match("eq", name.lower(), value, json.dumps(["eq", f"${name}", value]))
    if not isinstance(condition, list) or not condition or not isinstance(condition[0], str):
        raise _invalid_policy(f"Invalid Condition: {json.dumps(condition)}")
    operator = condition[0].lower()
    if operator == "content-length-range":
        if len(condition) != 3:
            raise _invalid_policy("Invalid content-length-range: wrong number of arguments.")
        minimum, maximum = (_length(bound) for bound in condition[1:])
        return _Range(minimum, maximum)
    if operator not in ("eq", "starts-with"):
        raise _invalid_policy(f"Invalid Condition: unknown operation {condition[0]!r}.")
    if len(condition) != 3:
        raise _invalid_policy(f"Invalid {condition[0]}: wrong number of arguments.")
    _, name, value = condition
    if not isinstance(name, str) or not name.startswith("$") or not isinstance(value, str):
        raise _invalid_policy(f"Invalid Condition: {json.dumps(condition)}")
    return _Match(operator, name[1:].lower(), value, json.dumps(condition))


def _allows_starts_with(field: str) -> bool:
    if field in _EXACT_ONLY_FIELDS:
        return False
    return not field.startswith("x-amz-") or field.startswith("x-amz-meta-")


def _length(bound: Any) -> int:
    # JSON integers; SDKs that write them as digit strings are read the same way.
    if isinstance(bound, bool) or not isinstance(bound, int | str):
        raise _invalid_policy("Invalid content-length-range: bounds must be integers.")
    try:
        return int(bound)
    except ValueError as exc:
        raise _invalid_policy("Invalid content-length-range: bounds must be integers.") from exc


# --- the form ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostForm:
    """A multipart form as S3 reads it: the fields before the file, the file, and the body up to
    the end of the file part (S3 ignores whatever follows the file)."""

    fields: dict[str, str]
    file: bytes | None
    through_file: bytes


def parse_post_form(body: bytes, boundary: str) -> PostForm:
    """Return the form in a `multipart/form-data` body; raises PostPolicyError
    (MalformedPOSTRequest) when the body is not well-formed multipart/form-data."""
    delimiter = b"--" + boundary.encode("latin-1")
    position = 0 if body.startswith(delimiter) else body.find(b"\r\n" + delimiter)
    if position < 0:
        raise _malformed()
    position = body.index(delimiter, position) + len(delimiter)
    fields: dict[str, str] = {}
    while True:
        if body.startswith(b"--", position):
            return PostForm(fields, None, body)
        line_end = body.find(b"\r\n", position)
        if line_end < 0 or body[position:line_end].strip(b" \t"):
            raise _malformed()
        start = line_end + 2
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise _malformed()
        name, content = _read_part(body[start:end])
        if name.lower() == "file":
            return PostForm(fields, content, body[:end] + b"\r\n" + delimiter + b"--\r\n")
        fields.setdefault(name, content.decode("utf-8", errors="replace"))
        position = end + 2 + len(delimiter)


def _read_part(part: bytes) -> tuple[str, bytes]:
    if part.startswith(b"\r\n"):
        raise _malformed()  # no Content-Disposition, so no field name
    split = part.find(b"\r\n\r\n")
    if split < 0:
        raise _malformed()
    headers = HeaderParser().parsestr(part[:split].decode("utf-8", errors="replace"))
    name = headers.get_param("name", header="content-disposition")
    if not name:
        raise _malformed()
    return collapse_rfc2231_value(name), part[split + 4 :]


def _malformed() -> PostPolicyError:
    return PostPolicyError(
        "MalformedPOSTRequest", 400, "The body of your POST request is not well-formed multipart/form-data."
    )


# --- the WSGI gate -------------------------------------------------------------------------------

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class PostPolicyGate:
    """WSGI middleware: checks every POST upload form that carries a policy, as S3 does.

    A `multipart/form-data` POST to a bucket (`/bucket`, `/bucket/`, or `/` on a bucket's virtual
    host) whose fields before the file include `policy` is checked with `check_post_policy`; a
    refusal is answered with S3's XML error document, anything else goes on to `app` with the body
    cut after the file part (S3 ignores later fields; moto would not). Every other request, and a
    form without a policy (an anonymous upload, which S3 decides by the bucket's permissions),
    passes through untouched.
    """

    def __init__(
        self,
        app: WsgiApp,
        *,
        secret_key: str | None,
        allow_sigv2: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.app = app
        self.secret_key = secret_key
        self.allow_sigv2 = allow_sigv2
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        boundary = _form_boundary(environ) if environ.get("REQUEST_METHOD") == "POST" else None
        bucket = _bucket_of(environ) if boundary else None
        if not boundary or not bucket:
            return self.app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return self.app(environ, start_response)  # moto answers 411, as S3 does
        body = environ["wsgi.input"].read(length)
        try:
            form = parse_post_form(body, boundary)
        except PostPolicyError as error:
            return self._refuse(start_response, error, bucket, None)
        if not any(name.lower() == "policy" for name in form.fields):
            return self._forward(environ, start_response, body)
        try:
            if form.file is None:
                raise PostPolicyError(
                    "InvalidArgument",
                    400,
                    "POST requires exactly one file upload per request.",
                    (("ArgumentName", "file"), ("ArgumentValue", "0")),
                )
            check_post_policy(
                form.fields,
                len(form.file),
                bucket,
                now=self.clock(),
                secret_key=self.secret_key,
                allow_sigv2=self.allow_sigv2,
            )
        except PostPolicyError as error:
            key = next((value for name, value in form.fields.items() if name.lower() == "key"), None)
            return self._refuse(start_response, error, bucket, key)
        return self._forward(environ, start_response, form.through_file)

    def _forward(
        self, environ: dict[str, Any], start_response: Callable[..., Any], body: bytes
    ) -> Iterable[bytes]:
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)

    def _refuse(
        self, start_response: Callable[..., Any], error: PostPolicyError, bucket: str, key: str | None
    ) -> list[bytes]:
        log.info("refused POST upload bucket=%s key=%s code=%s", bucket, key, error.code)
        return _respond(start_response, error)


def _respond(start_response: Callable[..., Any], error: PostPolicyError) -> list[bytes]:
    document = error.to_xml()
    status = HTTPStatus(error.status)
    start_response(
        f"{status.value} {status.phrase}",
        [("Content-Type", "application/xml"), ("Content-Length", str(len(document)))],
    )
    return [document]


def _form_boundary(environ: Mapping[str, Any]) -> str | None:
    header = Message()
    header["Content-Type"] = environ.get("CONTENT_TYPE", "")
    if header.get_content_type() != "multipart/form-data":
        return None
    boundary = header.get_param("boundary")
    return collapse_rfc2231_value(boundary) if boundary else None


def _bucket_of(environ: Mapping[str, Any]) -> str | None:
    """The bucket a request is posted to, or None when it is not a bucket's root."""
    path = environ.get("PATH_INFO", "")
    host = (environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "").lower()
    # "[::1]:4566" is an IPv6 literal and a port; "name:4566" a name and a port.
    hostname = host[1 : host.find("]")] if host.startswith("[") else host.split(":", 1)[0]
    virtual = _virtual_host_bucket(hostname)
    if virtual:
        return virtual if path in ("", "/") else None
    match = re.fullmatch(r"/([^/]+)/?", path)
    return match.group(1) if match else None


def _virtual_host_bucket(hostname: str) -> str | None:
    # The addresses moto serves path-style (as its S3 does): IPs, localhost, dotless names, and
    # S3's own path-style endpoints (s3.amazonaws.com, s3.<region>.amazonaws.com).
    try:
        ipaddress.ip_address(hostname)
        return None
    except ValueError:
        pass
    if "." not in hostname or hostname.startswith("localhost") or re.match(r"s3[.-]", hostname):
        return None
    if hostname.endswith(".amazonaws.com"):
        match = re.match(r"(.+?)\.s3[.-]", hostname)
        return match.group(1) if match else None
    return hostname.split(".", 1)[0]


def install_post_policy_gate(
    server: Any, *, secret_key: str | None, allow_sigv2: bool = False
) -> PostPolicyGate:
    """Put a PostPolicyGate in front of a started moto ThreadedMotoServer; return the gate.

    ThreadedMotoServer builds its WSGI app inside its server thread and keeps the werkzeug server
    in `_server`, whose request handlers read `server.app` for each request, so the app is wrapped
    in place (before anyone has been told the port).
    """
    wsgi_server = server._server
    if wsgi_server is None:
        raise RuntimeError("start the moto server before installing the POST policy gate")
    gate = PostPolicyGate(wsgi_server.app, secret_key=secret_key, allow_sigv2=allow_sigv2)
    wsgi_server.app = gate
    return gate
