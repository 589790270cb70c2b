"""`lantern serve` under hostile connections, and what its own log holds."""

from __future__ import annotations

import selectors
import socket
import subprocess
import time
from contextlib import ExitStack, suppress
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.e2e.conftest import start_server

IDLE_SOCKETS = 300
XFF_ADDRESS = "198.51.100.23"


def _address(url: str) -> tuple[str, int]:
    parts = urlparse(url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=10)
    return output.decode()


def _open_after(sockets: list[socket.socket], seconds: float) -> list[socket.socket]:
    """The sockets the server has not closed (no end-of-stream read) within `seconds`."""
    open_ = {sock.fileno(): sock for sock in sockets}
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ)
        while open_ and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
                sock = open_.pop(key.fd)
                selector.unregister(sock)
                with suppress(ConnectionResetError):
                    sock.recv(1024)  # the end of the stream: the server said nothing first
    return list(open_.values())


@pytest.mark.slow
def test_the_servers_log_holds_no_client_address_and_no_query_string(
    database_url: str, tmp_path: Path
) -> None:
    process, url = start_server(database_url, tmp_path, LANTERN_LOG_LEVEL="info")
    try:
        client_socket = socket.create_connection(_address(url))
        client_port = client_socket.getsockname()[1]
        client_socket.sendall(
            b"GET /healthz?token=secret-in-query HTTP/1.1\r\nHost: x\r\n"
            + f"X-Forwarded-For: {XFF_ADDRESS}\r\nConnection: close\r\n\r\n".encode()
        )
        answer = client_socket.recv(4096)
        client_socket.close()
        refused = httpx.post(
            url + "/v1/batch",
            headers={"X-Forwarded-For": XFF_ADDRESS, "X-Real-IP": XFF_ADDRESS},
            content=b"{}",
        )
    finally:
        log = _stop(process)
    assert answer.startswith(b"HTTP/1.1 200")
    assert XFF_ADDRESS not in log
    assert f":{client_port}" not in log
    assert "secret-in-query" not in log
    assert "GET /healthz 200" in log
    assert f"POST /v1/batch {refused.status_code}" in log


@pytest.mark.slow
def test_idle_connections_are_closed_and_healthz_answers_through_a_flood_of_them(
    database_url: str, tmp_path: Path
) -> None:
    process, url = start_server(
        database_url,
        tmp_path,
        LANTERN_MAX_CONNECTIONS="50",
        LANTERN_HEADER_TIMEOUT_SECONDS="1",
    )
    try:
        with ExitStack() as stack:
            idle = [
                stack.enter_context(socket.create_connection(_address(url)))
                for _ in range(IDLE_SOCKETS)
            ]
            still_open = _open_after(idle, 15)
            # bounded: the idle ones are gone once the header timeout has passed
            deadline = time.monotonic() + 20
            status = 0
            while status != 200 and time.monotonic() < deadline:
                status = httpx.get(url + "/healthz", timeout=5).status_code
        assert still_open == []
        assert status == 200
    finally:
        _stop(process)


@pytest.mark.slow
def test_a_request_whose_body_stalls_gets_a_408_and_the_connection_is_closed(
    database_url: str, tmp_path: Path
) -> None:
    process, url = start_server(database_url, tmp_path, LANTERN_BODY_TIMEOUT_SECONDS="1")
    try:
        with socket.create_connection(_address(url)) as sock:
            sock.settimeout(15)
            sock.sendall(
                b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
                b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"email": '
            )
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        healthy = httpx.get(url + "/healthz").status_code
    finally:
        _stop(process)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"request_timeout" in answer
    assert healthy == 200
