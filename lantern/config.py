"""Settings: the one place the environment is read (variables prefixed ``LANTERN_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Sensitivity = Literal["low", "medium", "high"]

# The hourly pass reads 29 days of a metric's buckets, and a metric trains for 7: a
# shorter retention would take hours from under it.
MIN_RETENTION_DAYS = 30
# Hours since the Unix epoch are stored in 32-bit integers; a century is far inside them.
MAX_RETENTION_DAYS = 36_500


class Settings(BaseSettings):
    """Everything Lantern can be told; the defaults need no environment at all."""

    model_config = SettingsConfigDict(env_prefix="LANTERN_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("lantern-data"), description="Folder for the SQLite file.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; defaults to a SQLite file in data_dir. "
        "Use postgresql+psycopg://user@host/db for PostgreSQL.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "warning"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = Field(default=None, description="Dashboard URL used in Slack links.")

    # the web server (`lantern serve`): a flood of idle or slow connections is cut short
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections (and requests in flight) per worker; past it, 503.",
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A new connection must send its request head within it."
    )
    keep_alive_timeout_seconds: int = Field(
        default=5, ge=1, description="An idle kept-alive connection is closed after it."
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait for the next part of a request body."
    )

    # logging in: failed logins are limited; password checks wait in a bounded queue
    login_failures_per_address: int = Field(default=20, ge=1)
    login_failures_per_account: int = Field(default=10, ge=1)
    login_failure_window_minutes: float = Field(default=15.0, gt=0)
    login_hash_workers: int = Field(default=1, ge=1, description="Threads checking passwords.")
    login_hash_queue: int = Field(
        default=16, ge=0, description="Password checks that may wait; past it, 503."
    )

    # ingest
    max_request_bytes: int = 500 * 1024
    max_event_bytes: int = 32 * 1024
    max_batch_events: int = 2500
    late_horizon_days: float = 7.0
    future_skew_minutes: float = 10.0
    import_horizon_days: float = 400.0
    dedupe_hours: float = 24.0
    metric_cap: int = 10_000
    debug_recent_events: int = 50

    # storage
    retention_days: int = Field(
        default=400,
        description="Days of buckets kept; older hours are dropped daily (at least "
        f"{MIN_RETENTION_DAYS}: the hourly pass reads 29 days).",
    )

    # detection and alerts
    sensitivity: Sensitivity = "medium"
    detection_grace_minutes: float = 5.0
    scheduler_enabled: bool = True
    detect_executor: Literal["inline", "process", "dask"] = Field(
        default="inline",
        description="Where the hourly pass scores metrics: inline, a process pool, or Dask "
        "(the default once dask_scheduler_address is set).",
    )
    dask_scheduler_address: str | None = Field(
        default=None, description="The Dask scheduler the hourly pass sends its partitions to."
    )

    # Slack
    slack_client_id: str | None = None
    slack_client_secret: str | None = None
    slack_base_url: str = "https://slack.com/api/"
    slack_signing_secret: str | None = Field(
        default=None,
        description="The Slack app's signing secret (Basic Information page): checks the "
        "button clicks of alerts sent through Add to Slack installs.",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_driver(cls, value: str | None) -> str | None:
        """Accept the common postgres:// spellings and use psycopg 3 for them."""
        if value is None:
            return None
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @field_validator("retention_days", mode="before")
    @classmethod
    def _whole_days(cls, value: object) -> object:
        """Days as a whole number within range, with a message that says how to fix it."""
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not number.is_integer():
            raise ValueError("the retention is a whole number of days, such as 400")
        if not MIN_RETENTION_DAYS <= number <= MAX_RETENTION_DAYS:
            raise ValueError(
                f"the retention must be from {MIN_RETENTION_DAYS} days (the hourly pass "
                f"reads 29) to {MAX_RETENTION_DAYS}"
            )
        return int(number)

    @model_validator(mode="after")
    def _history_within_retention(self) -> Settings:
        """Imported history is never older than what is kept: it would go at the next clean-up.

        A retention shorter than the default import horizon shortens the horizon with it;
        both set, and the horizon longer, is an error.
        """
        if self.import_horizon_days <= self.retention_days:
            return self
        if "import_horizon_days" not in self.model_fields_set:
            self.import_horizon_days = float(self.retention_days)
            return self
        raise ValueError(
            f"LANTERN_IMPORT_HORIZON_DAYS ({self.import_horizon_days:g}) is longer than "
            f"LANTERN_RETENTION_DAYS ({self.retention_days}): imported history older than "
            "the retention would be deleted at the next clean-up; shorten the import "
            "horizon or lengthen the retention"
        )

    @model_validator(mode="after")
    def _dask_needs_a_scheduler(self) -> Settings:
        """A scheduler address means Dask, unless told otherwise; Dask needs an address."""
        if self.dask_scheduler_address and "detect_executor" not in self.model_fields_set:
            self.detect_executor = "dask"
        if self.detect_executor == "dask":
            address = self.dask_scheduler_address or ""
            if "://" not in address:
                raise ValueError(
                    "detection on Dask needs the scheduler's address, such as "
                    "tcp://10.0.0.5:8786, in LANTERN_DASK_SCHEDULER_ADDRESS or "
                    f"`lantern worker --dask`; got {address!r}"
                )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The URL in force: the configured one, else the SQLite file under data_dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'lantern.db').resolve()}"

    @property
    def resolved_public_url(self) -> str:
        """Where the dashboard is reached, for links in messages."""
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def public_url_warning(self) -> str | None:
        """Why links in messages will not work for their readers, while the URL is unset."""
        if self.public_url:
            return None
        return (
            f"LANTERN_PUBLIC_URL is not set: links in Slack messages point at "
            f"{self.resolved_public_url}, which only this machine can open, and Slack cannot "
            "reach the button endpoint. Set it to the address people use to open Lantern"
        )


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
