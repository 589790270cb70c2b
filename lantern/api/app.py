"""create_app(): the one FastAPI application serving ingest, the dashboard API and pages."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lantern import __version__
from lantern.accounts.limits import LoginLimiter
from lantern.accounts.service import password_checker
from lantern.api import (
    auth,
    insights,
    metrics,
    slack_interactivity,
    slack_oauth,
    sources,
    tokens,
    webhooks,
)
from lantern.api import settings as settings_api
from lantern.api.ingest import router as ingest_router
from lantern.api.lifespan import lifespan
from lantern.api.middleware import AccessLog, BodyTimeout, SecurityHeaders
from lantern.config import Settings, get_settings
from lantern.db.session import get_engine
from lantern.errors import LanternError
from lantern.web import views as web

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    503: "unavailable",
}


def _error(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    # `code`/`message` are what Segment's clients and debugger read; `error`/`detail` are ours.
    body = {"error": error, "detail": detail, "code": error, "message": detail}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The application, on `engine` (default: the configured database)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Lantern",
        version=__version__,
        description="Segment-compatible ingest, insights and the dashboard API.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine or get_engine(settings.resolved_database_url)
    app.state.login_limiter = LoginLimiter(
        per_address=settings.login_failures_per_address,
        per_account=settings.login_failures_per_account,
        window_seconds=settings.login_failure_window_minutes * 60,
    )
    app.state.password_checker = password_checker(
        workers=settings.login_hash_workers, queue=settings.login_hash_queue
    )

    @app.exception_handler(LanternError)
    async def lantern_error(_request: Request, exc: LanternError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return _error(exc.status_code, exc.error, exc.detail, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        return _error(422, "invalid_request", "; ".join(parts) or "the request is invalid")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (a body that is not JSON, an unknown path or method) in
        # the same shape as every other error
        code = HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else None
        return _error(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, _exc: OperationalError) -> JSONResponse:
        return _error(
            503,
            "database_unavailable",
            "the database cannot be reached just now; retry shortly (nothing was counted)",
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        # a fault of Lantern's own, still in the documented shape (and logged by the server)
        return _error(
            500,
            "internal_error",
            "Lantern failed on this request; it has been logged. Try again, and report it if "
            "it keeps happening",
        )

    @app.get("/healthz", tags=["service"], summary="Up, with a reachable database")
    def healthz() -> JSONResponse:
        try:
            with app.state.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError:
            return _error(503, "database_unavailable", "the database cannot be reached")
        return JSONResponse({"status": "ok", "version": __version__})

    app.include_router(ingest_router)
    app.include_router(auth.router)
    app.include_router(sources.router)
    app.include_router(metrics.router)
    app.include_router(insights.router)
    app.include_router(settings_api.router)
    app.include_router(tokens.router)
    app.include_router(webhooks.router)
    app.include_router(slack_oauth.router)
    app.include_router(slack_interactivity.router)
    app.include_router(web.router)
    app.mount("/static", web.static_files, name="static")
    # the last added runs first: the access log times everything, headers go on every answer
    app.add_middleware(BodyTimeout, seconds=settings.body_timeout_seconds)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog)
    return app
