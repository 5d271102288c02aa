"""The simulator's batch compliance: compliance events, jobs and their pre-signed storage URLs.

A job is created (``created``), gets its ids by one upload to its upload URL, stays ``in_progress``
for the simulator's processing time (and until a thread has found the posts of its ids: a million take
a minute or two), then ends ``complete`` (or ``failed``/``expired`` by a fault, or ``failed`` when
cancelled or when a line is not an id; ``expired`` when nothing was uploaded before the upload URL
expired). Its status is computed from these moments.
The URLs stand for X's Google Cloud Storage URLs: signed (method, path, date, expiry), refused once
expired, answered with Cloud Storage's XML errors.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from x_api_simulator.tweets import Event, format_ms

JOBS_PATH = "/2/compliance/jobs"
UPLOAD_PATH = "/_sim/compliance/upload"
DOWNLOAD_PATH = "/_sim/compliance/download"
JOB_TYPES = ("tweets", "users")
STATUSES = ("created", "in_progress", "failed", "complete", "expired")
# What each kind of event asks of whoever stores the post: (action, reason, what it targets)
KINDS = {
    "delete": ("delete", "deleted", "post"),
    "withhold": ("delete", "withheld", "post"),
    "scrub_geo": ("scrub_geo", "geo_scrubbed", "post"),
    "edit": ("rehydrate", "tweet_edited", "post"),
    "protect": ("delete", "protected", "account"),
    "suspend": ("delete", "suspended", "account"),
    "deactivate": ("delete", "deactivated", "account"),
}
ACCOUNT_KINDS = tuple(kind for kind, (_, _, target) in KINDS.items() if target == "account")
X_ID = re.compile(r"[0-9]{1,19}")  # a post, user or job id
CONFLICT = {
    "title": "Conflict",
    "detail": "You cannot create a new job if one is already in progress.",
    "type": "https://api.twitter.com/2/problems/conflict",
}
UNSUPPORTED_AUTHENTICATION = {
    "title": "Unsupported Authentication",
    "detail": "Authenticating with OAuth 1.0a User Context is forbidden for this endpoint.  Supported "
    "authentication types are [OAuth 2.0 Application-Only].",
    "type": "https://api.twitter.com/2/problems/unsupported-authentication",
    "status": 403,
}
STORAGE_ERRORS = {  # Cloud Storage's XML error codes: (status, message)
    "ExpiredToken": (400, "The provided token has expired."),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided.",
    ),
    "NoSuchKey": (404, "The specified key does not exist."),
    "EntityTooLarge": (413, "Your proposed upload is larger than the maximum object size."),
    "InvalidArgument": (400, "Invalid argument."),
}


def storage_error(code: str, details: str) -> tuple[int, bytes]:
    """(status, XML body) of a Cloud Storage error."""
    status, message = STORAGE_ERRORS[code]
    body = (
        "<?xml version='1.0' encoding='UTF-8'?><Error>"
        f"<Code>{code}</Code><Message>{message}</Message><Details>{details}</Details></Error>"
    )
    return status, body.encode()


def hides(event: Event) -> bool:
    """Whether an event takes the post out of search (and asks for its deletion)."""
    return KINDS[event.kind][0] == "delete"


def result_line(tweet_id: str, created_ms: int | None, events: list[Event], as_of_ms: int) -> dict | None:
    """The result line of an id with these events, as of a moment: None if none had happened. A
    deletion (the earliest) wins over a geo scrub or an edit (the latest)."""
    happened = [event for event in events if event and event.at_ms <= as_of_ms]
    if not happened:
        return None
    deletions = [event for event in happened if hides(event)]
    event = min(deletions, key=lambda e: e.at_ms) if deletions else max(happened, key=lambda e: e.at_ms)
    action, reason, _ = KINDS[event.kind]
    line = {"id": tweet_id, "action": action}
    if created_ms is not None:
        line["created_at"] = format_ms(created_ms)
    return {**line, "redacted_at": format_ms(event.at_ms), "reason": reason}


@dataclass
class Job:
    """A batch compliance job and the moments its status follows from."""

    id: str
    type: str
    name: str | None
    resumable: bool
    created_ms: int
    upload_expires_ms: int
    download_expires_ms: int
    processing_ms: int
    ids: list[str] = field(default_factory=list)
    uploaded_ms: int | None = None
    resolved_ms: int | None = None  # when the simulator had found the posts of its ids (None: not yet)
    versions: dict = field(default_factory=dict)  # each id's (post, scheduled edit) or None, once resolved
    outcome: str = "complete"
    cancelled: bool = False
    sessions: set[str] = field(default_factory=set)  # resumable upload sessions

    def status(self, now_ms: int) -> str:
        if self.cancelled:
            return "failed"
        if self.uploaded_ms is None:
            return "expired" if now_ms >= self.upload_expires_ms else "created"
        finished = self.finished_ms
        return "in_progress" if finished is None or now_ms < finished else self.outcome

    @property
    def finished_ms(self) -> int | None:
        """When processing ends: its time after the upload, or later if finding its posts took longer (None
        until they are found); the moment its results are taken at."""
        if self.resolved_ms is None:
            return None
        return max(self.uploaded_ms + self.processing_ms, self.resolved_ms)

    def active(self, now_ms: int) -> bool:
        return self.status(now_ms) in ("created", "in_progress")


class Signer:
    """Signs storage URLs like Cloud Storage's V4 signing, with a key of the simulator's own."""

    def __init__(self, key: bytes):
        self.key = key

    def url(self, base_url: str, method: str, path: str, signed_ms: int, expires_ms: int) -> str:
        date = datetime.fromtimestamp(signed_ms / 1000, UTC).strftime("%Y%m%dT%H%M%SZ")
        expires = str((expires_ms - signed_ms) // 1000)
        query = {
            "X-Goog-Algorithm": "GOOG4-HMAC-SHA256",
            "X-Goog-Date": date,
            "X-Goog-Expires": expires,
            "X-Goog-SignedHeaders": "content-type;host" if method != "GET" else "host",
            "X-Goog-Signature": self._signature(method, path, date, expires),
        }
        return f"{base_url}{path}?{urlencode(query)}"

    def check(self, method: str, path: str, params: dict[str, str], now_ms: int) -> tuple[str, str] | None:
        """None if the request's signature holds and has not expired, else the storage error's code
        and details."""
        date, expires = params.get("X-Goog-Date", ""), params.get("X-Goog-Expires", "")
        expected = self._signature(method, path, date, expires)
        if not hmac.compare_digest(expected, params.get("X-Goog-Signature", "")):
            return "SignatureDoesNotMatch", f"{method} {path}"
        signed = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        expiry_ms = int(signed.timestamp() * 1000) + int(expires) * 1000
        if now_ms >= expiry_ms:
            return "ExpiredToken", f"Request signature expired at: {format_ms(expiry_ms)}"
        return None

    def _signature(self, method: str, path: str, date: str, expires: str) -> str:
        message = "\n".join((method, path, date, expires)).encode()
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()


def job_json(job: Job, signer: Signer, base_url: str, now_ms: int) -> dict:
    """A job as the API's ``ComplianceJob``, with its signed upload and download URLs."""
    upload = signer.url(
        base_url,
        "POST" if job.resumable else "PUT",  # a resumable upload starts with a POST, as on Cloud Storage
        f"{UPLOAD_PATH}/{job.id}",
        job.created_ms,
        job.upload_expires_ms,
    )
    download = signer.url(
        base_url, "GET", f"{DOWNLOAD_PATH}/{job.id}", job.created_ms, job.download_expires_ms
    )
    return {
        "id": job.id,
        "type": job.type,
        **({"name": job.name} if job.name is not None else {}),
        "resumable": job.resumable,
        "status": job.status(now_ms),
        "created_at": format_ms(job.created_ms),
        "upload_url": upload,
        "upload_expires_at": format_ms(job.upload_expires_ms),
        "download_url": download,
        "download_expires_at": format_ms(job.download_expires_ms),
    }
