"""Page routes: each answers the same shell, and the page's script draws it from /api/v1."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from lantern import __version__
from lantern.accounts.service import session_for_cookie
from lantern.api.deps import SESSION_COOKIE, SessionDep
from lantern.detect.kinds import LABELS
from lantern.errors import Unauthorized

STATIC = Path(__file__).parent / "static"
KIND_LABELS = escape(json.dumps(LABELS))  # the page's names of detection kinds
router = APIRouter(include_in_schema=False)

SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Lantern</title>
<link rel="icon" href="/static/lantern.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/app.css?v={version}">
</head>
<body data-page="{page}" data-id="{object_id}" data-kinds="{kinds}">
<header class="top">
  <a class="brand" href="/"><img src="/static/lantern.svg" alt="" width="22" height="22">
  Lantern</a>
  {nav}
</header>
<main id="app" aria-live="polite"><p class="muted">Loading…</p></main>
<script src="/static/chart.js?v={version}"></script>
<script src="/static/app.js?v={version}"></script>
</body>
</html>
"""

NAV = """<nav>
    <a href="/" data-nav="feed">Newsfeed</a>
    <a href="/metrics" data-nav="metrics">Metrics</a>
    <a href="/sources" data-nav="sources">Sources</a>
    <a href="/settings" data-nav="settings">Settings</a>
    <button type="button" class="link" id="logout">Log out</button>
  </nav>"""


def _page(title: str, page: str, object_id: int | str = "", *, nav: bool = True) -> HTMLResponse:
    html = SHELL.format(
        title=escape(title),
        page=page,
        object_id=escape(str(object_id)),
        nav=NAV if nav else "",
        version=__version__,
        kinds=KIND_LABELS,
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def _logged_in(request: Request, session: SessionDep) -> bool:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return False
    try:
        session_for_cookie(session, token=token)
    except Unauthorized:
        return False
    return True


def _login_first(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def _guarded(
    request: Request, session: SessionDep, title: str, page: str, object_id: int | str = ""
) -> Response:
    if not _logged_in(request, session):
        return _login_first(request)
    return _page(title, page, object_id)


@router.get("/login")
def login_page() -> Response:
    return _page("Log in", "login", nav=False)


@router.get("/")
def feed_page(request: Request, session: SessionDep) -> Response:
    return _guarded(request, session, "Newsfeed", "feed")


@router.get("/insights/{insight_id}")
def insight_page(insight_id: int, request: Request, session: SessionDep) -> Response:
    return _guarded(request, session, "Insight", "insight", insight_id)


@router.get("/metrics")
def metrics_page(request: Request, session: SessionDep) -> Response:
    return _guarded(request, session, "Metrics", "metrics")


@router.get("/metrics/{metric_id}")
def metric_page(metric_id: int, request: Request, session: SessionDep) -> Response:
    return _guarded(request, session, "Metric", "metric", metric_id)


@router.get("/sources")
def sources_page(request: Request, session: SessionDep) -> Response:
    return _guarded(request, session, "Sources", "sources")


@router.get("/sources/{source_id}")
def source_page(source_id: int, request: Request, session: SessionDep) -> Response:
    return _guarded(request, session, "Debug view", "source", source_id)


@router.get("/settings")
def settings_page(request: Request, session: SessionDep) -> Response:
    return _guarded(request, session, "Settings", "settings")


static_files = StaticFiles(directory=STATIC)
