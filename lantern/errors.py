"""The domain exceptions, each mapped to one HTTP status by the API's single handler.

LanternError
 ├── BadRequest      400  the request cannot be read (bad JSON, too large, bad field)
 ├── Unauthorized    401  no key or token, or an unknown one
 ├── Forbidden       403  authenticated, but not allowed (CSRF, other workspace)
 ├── NotFound        404  no such object in this workspace
 ├── Conflict        409  the object exists already
 ├── Invalid         422  well-formed, but a value cannot be used (a snooze in the past)
 ├── TooManyRequests 429  too many failed logins: wait `retry_after` seconds
 ├── Unreachable     502  a service asked on the user's behalf (Slack) did not answer
 └── Busy            503  the server is saturated just now: retry after `retry_after` seconds
"""

from __future__ import annotations


class LanternError(Exception):
    """A failure the user can act on: `error` is a stable code, `detail` says what to do."""

    status_code = 500
    error = "internal_error"

    def __init__(
        self, detail: str, *, error: str | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after = retry_after  # seconds, sent as the Retry-After header
        if error is not None:
            self.error = error


class BadRequest(LanternError):
    status_code = 400
    error = "bad_request"


class Unauthorized(LanternError):
    status_code = 401
    error = "unauthorized"


class Forbidden(LanternError):
    status_code = 403
    error = "forbidden"


class NotFound(LanternError):
    status_code = 404
    error = "not_found"


class Conflict(LanternError):
    status_code = 409
    error = "conflict"


class Invalid(LanternError):
    status_code = 422
    error = "invalid_request"


class TooManyRequests(LanternError):
    status_code = 429
    error = "too_many_requests"


class Unreachable(LanternError):
    status_code = 502
    error = "upstream_unreachable"


class Busy(LanternError):
    status_code = 503
    error = "busy"
