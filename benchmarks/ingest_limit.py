#!/usr/bin/env python3
"""The limit for `benchmarks/ingest.py`: an app that only authenticates and parses.

    python benchmarks/ingest_limit.py --port 18500 --key KEY

It serves `POST /v1/batch` under the same HTTP server as `lantern serve` (uvicorn with
httptools and uvloop, access log off) and does only what no ingest can skip: read the
body, take the key from the Authorization header, look it up, parse the JSON with
Lantern's own reader and answer with the count. Nothing is judged, deduplicated or
stored. The ingest benchmark runs it in the same invocation and prints Lantern's cost
against it: what Lantern spends beyond this is the price of counting and keeping.
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

import orjson
import uvicorn

from lantern.ingest.protocol import key_from_header, parse_body


def make_app(key: str) -> Any:
    """A bare ASGI app accepting `/v1/batch` bodies for one key."""
    known = {hashlib.sha256(key.encode()).digest()}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        key_given = key_from_header(headers.get(b"authorization", b"").decode())
        if key_given is None or hashlib.sha256(key_given.encode()).digest() not in known:
            status, body = 401, b'{"error":"invalid_key"}'
        else:
            payload = parse_body(b"".join(chunks), batch=True)
            status, body = 200, orjson.dumps({"success": True, "accepted": len(payload.events)})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True, help="the one key it accepts")
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.key),
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop="uvloop",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
