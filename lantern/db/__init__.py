"""Database plumbing: the declarative base, engines, sessions and column types."""

from lantern.db.base import Base, UTCDateTime, utcnow
from lantern.db.session import get_engine, reset_engines, session_scope

__all__ = ["Base", "UTCDateTime", "get_engine", "reset_engines", "session_scope", "utcnow"]
