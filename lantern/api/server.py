"""`lantern serve`'s HTTP server: uvicorn with limits that a flood of connections cannot outlast.

uvicorn closes a kept-alive connection that stays idle, but not one that never sends a
request, nor one that sends its request head a byte at a time: each would hold a socket
for ever, and enough of them starve the server of file descriptors. Here every request
head must arrive within `header_timeout_seconds`, connections past `max_connections` are
answered 503, a body that stalls gets a 408 (`lantern.api.middleware.BodyTimeout`), and
uvicorn's own access log (client addresses, query strings) is replaced by Lantern's.
"""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lantern.config import Settings, get_settings


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, which also closes a connection slow to send a request head."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.header_timeout = get_settings().header_timeout_seconds
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def log_config(level: str) -> dict[str, object]:
    """Logging for the server: Lantern's access lines at info, no client addresses anywhere."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
            # uvicorn's access log names the client's address: never enabled
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "lantern": {"handlers": ["stderr"], "level": level.upper(), "propagate": False},
        },
    }


def serve(*, host: str, port: int, workers: int, settings: Settings | None = None) -> None:
    """Run the app under uvicorn with the connection limits of `settings`."""
    settings = settings or get_settings()
    uvicorn.run(
        "lantern.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=GuardedHttpProtocol,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_timeout_seconds,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
        access_log=False,
    )
