"""Segment's HTTP tracking API and the partner-destination webhook, as routes."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from lantern.api.deps import EngineDep, SettingsDep
from lantern.breakdowns.service import specs
from lantern.config import Settings
from lantern.db.base import utcnow
from lantern.errors import BadRequest
from lantern.ingest.protocol import Payload, decompress, parse_body, source_key
from lantern.ingest.service import judge_payload, limits_for
from lantern.ingest.types import IngestResult, Judged
from lantern.ingest.writer import writer_for
from lantern.workspaces.service import source_keys

router = APIRouter(tags=["ingest"])

SINGLE_TYPES = ("track", "page", "screen", "identify", "group", "alias")


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing to read past `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(
            f"the request is {int(declared) // 1024} KB; the limit is {limit // 1024} KB: "
            "send fewer events per batch",
            error="payload_too_large",
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadRequest(
                    f"the request is larger than {limit // 1024} KB", error="payload_too_large"
                )
            chunks.append(chunk)
    except ClientDisconnect:
        # Nobody is left to answer, but a 400 keeps it out of the error log.
        raise BadRequest("the client closed the connection before sending its body") from None
    return b"".join(chunks)


def _check_sizes(payload: Payload, settings: Settings, body_size: int) -> None:
    if len(payload.events) > settings.max_batch_events:
        raise BadRequest(
            f"the batch holds {len(payload.events)} events; at most "
            f"{settings.max_batch_events} are allowed: split it",
            error="too_many_events",
        )
    limit = settings.max_event_bytes
    if body_size <= limit:
        return  # no event can be larger than the whole body
    for index, event in enumerate(payload.events):
        if len(orjson.dumps(event)) > limit:
            raise BadRequest(
                f"event {index} is larger than {limit // 1024} KB: trim its properties",
                error="event_too_large",
            )


def _answer(result: IngestResult) -> Response:
    body: dict[str, Any] = {
        "success": True,
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
    }
    return Response(orjson.dumps(body), media_type="application/json")


async def _ingest(
    request: Request,
    engine: Any,
    settings: Settings,
    *,
    kind: str | None = None,
    history: bool = False,
) -> Response:
    received_at = utcnow()
    limit = settings.max_event_bytes if kind else settings.max_request_bytes
    raw = await _read_body(request, limit)
    raw = decompress(raw, request.headers.get("content-encoding"), limit=limit)
    payload = parse_body(raw, batch=kind is None and request.url.path.endswith(("batch", "import")))
    if kind is not None and payload.events and isinstance(payload.events[0], dict):
        payload.events[0]["type"] = kind
    key = source_key(request.headers.get("authorization"), payload)
    _check_sizes(payload, settings, len(raw))

    identity = source_keys.authenticate(engine, key)
    spec = specs.get(engine, identity.source_id)
    verdicts = judge_payload(
        payload, received_at=received_at, limits=limits_for(settings, history=history), spec=spec
    )

    judged = Judged(identity.source_id, verdicts, received_at, settings.metric_cap, spec)
    # The parsed body is not needed past here: let it go before waiting for the commit,
    # rather than keep a thousand objects alive per waiting request.
    del raw, payload
    return _answer(await writer_for(engine).submit_async(judged))


@router.post("/v1/batch", summary='Segment batch: {"batch": [events...]}')
async def batch(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    return await _ingest(request, engine, settings)


@router.post("/v1/import", summary="Historical batch, with the wider time window")
async def import_(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    return await _ingest(request, engine, settings, history=True)


@router.post("/v1/webhook", summary="Partner destination webhook: one event or an array")
async def webhook(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    return await _ingest(request, engine, settings)


def _single(kind: str) -> Any:
    async def route(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
        return await _ingest(request, engine, settings, kind=kind)

    route.__name__ = f"ingest_{kind}"
    return route


for _kind in SINGLE_TYPES:
    router.add_api_route(
        f"/v1/{_kind}", _single(_kind), methods=["POST"], summary=f"Segment {_kind} call"
    )
