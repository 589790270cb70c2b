"""Workspaces, sources and tokens: creation, key rotation and authentication."""

from __future__ import annotations

import hashlib
import secrets
import string
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine, delete, event, select
from sqlalchemy.orm import Session

from lantern.db.base import utcnow
from lantern.errors import BadRequest, Conflict, NotFound, Unauthorized
from lantern.workspaces.models import ApiToken, Source, Workspace

# The workspace a command makes when the database has none and none is named.
DEFAULT_WORKSPACE = "default"
KEY_ALPHABET = string.ascii_letters + string.digits
TOKEN_PREFIX = "lt_"
AUTH_CACHE_SECONDS = 10.0
# last_used_at is written at most once a minute per token: a script polling the API
# should not turn every read into a write.
TOKEN_USE_PRECISION = timedelta(minutes=1)


def hash_secret(secret: str) -> str:
    """SHA-256 of a generated secret.

    Keys and tokens are 190 random bits, so a fast hash is enough: there is nothing to
    brute-force, and ingest checks a key on every request.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def new_source_key() -> str:
    """A fresh source API key: 32 letters and digits, like a Segment write key."""
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(32))


def new_api_token() -> str:
    """A fresh workspace API token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class SourceIdentity:
    """Who a valid source key belongs to."""

    source_id: int
    workspace_id: int
    name: str


def get_or_create_workspace(
    session: Session, *, name: str, sensitivity: str = "medium"
) -> Workspace:
    """The workspace called `name`, created (with `sensitivity`) if it does not exist."""
    workspace = session.scalar(select(Workspace).where(Workspace.name == name))
    if workspace is None:
        workspace = Workspace(name=name, sensitivity=sensitivity)
        session.add(workspace)
        session.flush()
    return workspace


def choose_workspace(
    session: Session, *, name: str | None, create_with: str | None = None
) -> Workspace:
    """The workspace a command acts on: the one named, else the only one there is.

    With `create_with` (a sensitivity), a named workspace that does not exist yet is made,
    and so is DEFAULT_WORKSPACE in a database without any. With several workspaces and
    none named, the error lists them and says how to name one.
    """
    names = list(session.scalars(select(Workspace.name).order_by(Workspace.id)))
    if name is None:
        if len(names) == 1:
            name = names[0]
        elif names:
            raise Conflict(
                f"there are {len(names)} workspaces ({_some(names)}): say which with "
                f"--workspace NAME, e.g. --workspace {names[0]}",
                error="workspace_ambiguous",
            )
        elif create_with is not None:
            name = DEFAULT_WORKSPACE
        else:
            raise NotFound(
                "there is no workspace yet: `lantern user create EMAIL` or `lantern source "
                "create NAME` makes one",
                error="no_workspace",
            )
    if name not in names and create_with is None:
        known = f"; the workspaces are {_some(names)}" if names else ""
        raise NotFound(
            f"no workspace {name!r}{known} (pass one with --workspace NAME)",
            error="no_workspace",
        )
    return get_or_create_workspace(session, name=name, sensitivity=create_with or "medium")


def _some(names: list[str], shown: int = 10) -> str:
    """Names for an error message: the first `shown`, then how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def create_source(session: Session, *, workspace: Workspace, name: str) -> tuple[Source, str]:
    """A new source and its API key (the only time the key is visible)."""
    name = name.strip()
    if not name:
        raise BadRequest("a source needs a name that is not blank, e.g. web", error="invalid_name")
    exists = session.scalar(
        select(Source.id).where(Source.workspace_id == workspace.id, Source.name == name)
    )
    if exists is not None:
        raise Conflict(f"workspace {workspace.name!r} already has a source called {name!r}")
    key = new_source_key()
    source = Source(
        workspace_id=workspace.id, name=name, key_hash=hash_secret(key), key_hint=key[:4]
    )
    session.add(source)
    session.flush()
    return source, key


def get_source(session: Session, *, workspace_id: int, source_id: int) -> Source:
    """A workspace's source by id."""
    source = session.get(Source, source_id)
    if source is None or source.workspace_id != workspace_id:
        raise NotFound(f"no source {source_id} in this workspace")
    return source


def find_source(session: Session, *, name: str, workspace: str | None = None) -> Source:
    """A source by name (and workspace name, needed when two workspaces share the name)."""
    query = select(Source).where(Source.name == name)
    if workspace is not None:
        query = query.join(Workspace).where(Workspace.name == workspace)
    found = session.scalars(query).all()
    if not found:
        where = f" in workspace {workspace!r}" if workspace else ""
        raise NotFound(f"no source called {name!r}{where}: `lantern source list` shows the sources")
    if len(found) > 1:
        spaces = ", ".join(
            session.scalars(
                select(Workspace.name)
                .where(Workspace.id.in_([s.workspace_id for s in found]))
                .order_by(Workspace.name)
            )
        )
        raise Conflict(
            f"workspaces {spaces} each have a source called {name!r}: say which with "
            "--workspace NAME",
            error="workspace_ambiguous",
        )
    return found[0]


def rotate_source_key(session: Session, *, source: Source) -> str:
    """Give a source a new key; the old one stops working at once in this process."""
    key = new_source_key()
    source.key_hash = hash_secret(key)
    source.key_hint = key[:4]
    source.rotated_at = utcnow()
    session.flush()
    source_keys.clear()
    return key


def delete_source(session: Session, *, source: Source) -> None:
    """Delete a source with its metrics, buckets and insights; its key stops working.

    The caches of keys and metric ids are emptied once the deletion is committed (SQLite
    may hand a deleted row's id to the next one).
    """
    from lantern.metrics.service import metric_ids

    def forget(_session: Session) -> None:
        source_keys.clear()
        metric_ids.clear()

    session.execute(delete(Source).where(Source.id == source.id))
    session.flush()
    event.listen(session, "after_commit", forget, once=True)


def set_sensitivity(session: Session, *, workspace: Workspace, sensitivity: str) -> Workspace:
    """How readily the workspace's metrics raise insights: low, medium or high."""
    workspace.sensitivity = sensitivity
    session.flush()
    return workspace


def set_delivery(
    session: Session,
    *,
    workspace: Workspace,
    time_zone: str,
    quiet_start: int | None,
    quiet_end: int | None,
    quiet_holds_outages: bool,
    quiet_hours_delivery: str = "each",
    digest_hour: int | None = None,
) -> Workspace:
    """The workspace's time zone, quiet hours (Slack messages wait them out) and digest hour.

    `quiet_hours_delivery` says how the alerts held go when the quiet hours end: `each`
    on its own, or one `summary` listing them.
    """
    workspace.time_zone = time_zone
    workspace.digest_hour = digest_hour
    workspace.quiet_start, workspace.quiet_end = quiet_start, quiet_end
    workspace.quiet_holds_outages = quiet_holds_outages
    workspace.quiet_hours_delivery = quiet_hours_delivery
    session.flush()
    return workspace


def create_api_token(session: Session, *, workspace: Workspace, name: str) -> tuple[ApiToken, str]:
    """A new workspace API token (the only time it is visible)."""
    token = new_api_token()
    row = ApiToken(workspace_id=workspace.id, name=name, token_hash=hash_secret(token))
    session.add(row)
    session.flush()
    return row, token


def workspace_for_token(session: Session, *, token: str) -> Workspace:
    """The workspace an API token belongs to; notes when the token was used."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_secret(token)))
    if row is None:
        raise Unauthorized("unknown or revoked API token: create one with `lantern token create`")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > TOKEN_USE_PRECISION:
        row.last_used_at = now
    workspace = session.get(Workspace, row.workspace_id)
    assert workspace is not None
    return workspace


def find_workspace(session: Session, *, name: str) -> Workspace | None:
    """The workspace called `name`, if any."""
    return session.scalar(select(Workspace).where(Workspace.name == name))


def list_api_tokens(session: Session, *, workspace_id: int) -> list[ApiToken]:
    """The workspace's API tokens, oldest first (their hashes only: tokens are never kept)."""
    query = select(ApiToken).where(ApiToken.workspace_id == workspace_id).order_by(ApiToken.id)
    return list(session.scalars(query))


def revoke_api_token(session: Session, *, workspace_id: int, token_id: int) -> None:
    """Delete one of the workspace's API tokens: requests bearing it are refused at once."""
    row = session.get(ApiToken, token_id)
    if row is None or row.workspace_id != workspace_id:
        raise NotFound(f"no API token {token_id} in this workspace: see `lantern token list`")
    session.delete(row)
    session.flush()


class SourceKeyCache:
    """Source keys already checked, remembered briefly so ingest does not query each time.

    A rotated or deleted key stops working within AUTH_CACHE_SECONDS in other processes.
    """

    def __init__(self, ttl: float = AUTH_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._entries: dict[tuple[str, str], tuple[float, SourceIdentity]] = {}
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def authenticate(self, engine: Engine, key: str) -> SourceIdentity:
        """The source a key belongs to, or Unauthorized."""
        digest = hash_secret(key)
        cache_key = (str(engine.url), digest)
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(cache_key)
        if hit is not None and hit[0] > now:
            return hit[1]
        with engine.connect() as connection:
            row = connection.execute(
                select(Source.id, Source.workspace_id, Source.name).where(Source.key_hash == digest)
            ).first()
        if row is None:
            raise Unauthorized(
                "unknown source API key: copy it from Lantern's settings, or create a source "
                "with `lantern source create`",
                error="invalid_key",
            )
        identity = SourceIdentity(source_id=row[0], workspace_id=row[1], name=row[2])
        with self._lock:
            self._entries[cache_key] = (now + self.ttl, identity)
        return identity


source_keys = SourceKeyCache()
