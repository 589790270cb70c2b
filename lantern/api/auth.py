"""Logging in and out of the web pages (a session cookie plus a CSRF token)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from lantern.accounts.limits import REFUSAL_DELAY_SECONDS, LoginLimiter, PasswordChecker
from lantern.accounts.service import SESSION_DAYS, LoggedIn, end_session, log_in, login_hash
from lantern.api.deps import SESSION_COOKIE, EngineDep, LoginDep, SessionDep
from lantern.api.schemas import ERRORS, ErrorOut, Strict
from lantern.db import session_scope
from lantern.errors import Busy, TooManyRequests, Unauthorized

router = APIRouter(
    prefix="/api/v1/auth",
    tags=["accounts"],
    responses=ERRORS,
)


class LoginIn(Strict):
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1000)


class UserOut(BaseModel):
    id: int
    email: str


class WorkspaceRef(BaseModel):
    id: int
    name: str


class MeOut(BaseModel):
    user: UserOut
    workspace: WorkspaceRef
    csrf_token: str = Field(description="Send it back as the X-CSRF-Token header on changes.")


def _me(logged_in: LoggedIn) -> MeOut:
    return MeOut(
        user=UserOut(id=logged_in.user.id, email=logged_in.user.email),
        workspace=WorkspaceRef(id=logged_in.workspace.id, name=logged_in.workspace.name),
        csrf_token=logged_in.csrf_token,
    )


@router.post(
    "/login",
    response_model=MeOut,
    summary="Log in and get a session cookie",
    responses={
        429: {"model": ErrorOut, "description": "Too many failed logins: see Retry-After"},
        503: {"model": ErrorOut, "description": "Too many logins at once: see Retry-After"},
    },
)
async def login(body: LoginIn, request: Request, response: Response, engine: EngineDep) -> MeOut:
    """Check the email and password; set the session cookie; return the CSRF token.

    `async`, so that a flood of logins waits on the event loop, holding no thread and no
    database connection: the limits are checked first, the password on its own threads.
    """
    limiter: LoginLimiter = request.app.state.login_limiter
    checker: PasswordChecker = request.app.state.password_checker
    address = request.client.host if request.client else "unknown"
    account = body.email.strip().lower()
    try:
        limiter.attempt(address=address, account=account)
    except TooManyRequests:
        await asyncio.sleep(REFUSAL_DELAY_SECONDS)
        raise
    try:
        user_id, stored = await run_in_threadpool(_login_hash, engine, account)
        matches, new_hash = await checker.verify(stored, body.password)
    except Busy:
        limiter.not_checked(address=address, account=account)
        await asyncio.sleep(REFUSAL_DELAY_SECONDS)
        raise
    if user_id is None or not matches:
        raise Unauthorized("wrong email or password", error="invalid_login")
    limiter.succeeded(address=address, account=account)
    logged_in = await run_in_threadpool(_log_in, engine, user_id, new_hash)
    response.set_cookie(
        SESSION_COOKIE,
        logged_in.token,
        max_age=SESSION_DAYS * 86400,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return _me(logged_in)


def _login_hash(engine: Engine, email: str) -> tuple[int | None, str]:
    with session_scope(engine) as session:
        return login_hash(session, email=email)


def _log_in(engine: Engine, user_id: int, new_hash: str | None) -> LoggedIn:
    # committed before the answer: the cookie works from the browser's next request
    with session_scope(engine) as session:
        return log_in(session, user_id=user_id, new_hash=new_hash)


@router.get("/me", response_model=MeOut, summary="Who is logged in")
def me(logged_in: LoginDep) -> MeOut:
    """The logged-in user, their workspace and the session's CSRF token."""
    return _me(logged_in)


@router.post("/logout", status_code=204, summary="End the browser session")
def logout(request: Request, session: SessionDep) -> Response:
    """Forget the session cookie, here and in the database."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        end_session(session, token=token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
