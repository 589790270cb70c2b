"""Users and browser sessions: argon2id passwords, hashed session tokens, CSRF tokens.

A browser that logs in gets a random session token in an HttpOnly cookie; the database
keeps only its SHA-256 (like API tokens) and a CSRF token that the page sends back in the
`X-CSRF-Token` header on every request that changes something.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from lantern.accounts.limits import PasswordChecker
from lantern.accounts.models import User, WebSession
from lantern.db.base import utcnow
from lantern.errors import BadRequest, Conflict, Forbidden, Unauthorized
from lantern.workspaces.models import Workspace
from lantern.workspaces.service import hash_secret

SESSION_DAYS = 14
MIN_PASSWORD = 8
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")

# argon2id with the library's defaults (RFC 9106's second recommended option).
_hasher = PasswordHasher()
# Verified against when the email is unknown, so both failures take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """Who a session cookie belongs to."""

    user: User
    workspace: Workspace
    csrf_token: str
    token: str = field(default="", repr=False)  # the cookie's value, known only at login


def hash_password(password: str) -> str:
    """An argon2id hash of `password`."""
    return _hasher.hash(password)


def normalise_email(email: str) -> str:
    """An email as stored: trimmed and lower-cased, checked for one @."""
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise BadRequest(f"{email!r} is not an email address", error="invalid_email")
    return email


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadRequest(
            f"the password needs at least {MIN_PASSWORD} characters", error="weak_password"
        )


def create_user(session: Session, *, workspace: Workspace, email: str, password: str) -> User:
    """A new user of `workspace` who logs in with `email` and `password`."""
    email = normalise_email(email)
    _check_password(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"there is already a user {email!r}")
    user = User(workspace_id=workspace.id, email=email, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, *, user: User, password: str) -> None:
    """Give `user` a new password and end their sessions."""
    _check_password(password)
    user.password_hash = hash_password(password)
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.flush()


def find_user(session: Session, *, email: str) -> User | None:
    """The user with `email`, if any."""
    return session.scalar(select(User).where(User.email == email.strip().lower()))


def authenticate(session: Session, *, email: str, password: str) -> User:
    """The user whose email and password these are, or Unauthorized (same answer for both)."""
    user = find_user(session, email=email)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise Unauthorized("wrong email or password", error="invalid_login")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def password_checker(*, workers: int, queue: int) -> PasswordChecker:
    """A checker of passwords with Lantern's argon2id parameters, on `workers` threads."""
    return PasswordChecker(_hasher, workers=workers, queue=queue)


def login_hash(session: Session, *, email: str) -> tuple[int | None, str]:
    """(user id, password hash) for `email`; (None, a dummy hash) for an unknown email, so
    that checking either costs the same."""
    user = find_user(session, email=email)
    return (user.id, user.password_hash) if user else (None, _DUMMY_HASH)


def log_in(session: Session, *, user_id: int, new_hash: str | None) -> LoggedIn:
    """A new browser session for a user whose password was checked (and a fresher hash)."""
    user = session.get(User, user_id)
    workspace = session.get(Workspace, user.workspace_id) if user else None
    if user is None or workspace is None:
        raise Unauthorized("wrong email or password", error="invalid_login")
    if new_hash is not None:
        user.password_hash = new_hash
    token, csrf = start_session(session, user=user)
    return LoggedIn(user=user, workspace=workspace, csrf_token=csrf, token=token)


def start_session(session: Session, *, user: User, now: datetime | None = None) -> tuple[str, str]:
    """A new browser session for `user`: (cookie token, CSRF token)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=hash_secret(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + timedelta(days=SESSION_DAYS),
        )
    )
    session.flush()
    return token, csrf


def session_for_cookie(session: Session, *, token: str, now: datetime | None = None) -> LoggedIn:
    """The user and workspace of a live session cookie, or Unauthorized."""
    now = now or utcnow()
    row = session.get(WebSession, hash_secret(token))
    if row is None or row.expires_at <= now:
        raise Unauthorized("your session has ended: log in again", error="session_expired")
    user = session.get(User, row.user_id)
    workspace = session.get(Workspace, user.workspace_id) if user else None
    if user is None or workspace is None:
        raise Unauthorized("your session has ended: log in again", error="session_expired")
    return LoggedIn(user=user, workspace=workspace, csrf_token=row.csrf_token)


def check_csrf(logged_in: LoggedIn, header: str | None) -> None:
    """Refuse a cookie-authenticated change without the session's CSRF token."""
    if not header or not hmac.compare_digest(header, logged_in.csrf_token):
        raise Forbidden(
            "missing or wrong X-CSRF-Token header: reload the page (scripts should use an "
            "API token instead of the session cookie)",
            error="csrf_failed",
        )


def end_session(session: Session, *, token: str) -> None:
    """Log a browser out."""
    session.execute(delete(WebSession).where(WebSession.token_hash == hash_secret(token)))
