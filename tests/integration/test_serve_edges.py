"""`rater serve` with its own TLS certificate, behind a trusted proxy (X-Forwarded-For for the
IP allow-lists), and with a request head over the cap."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from serve_support import call, serve, token, world

from rater.settings import Settings

pytestmark = pytest.mark.integration

BODY = {"account": "C1", "callee": "+31612345678", "max_seconds": 60}


def test_tls_with_the_services_own_certificate(
    settings: Settings, redis: Any, tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    world(settings, redis)
    tok = token(redis, f"sw-{uuid.uuid4().hex[:8]}", "R1")
    tls = settings.replace(http_tls_certfile=str(cert), http_tls_keyfile=str(key))
    context = ssl.create_default_context(cafile=str(cert))
    with serve(tls, tmp_path, healthz=False) as running:
        connection = http.client.HTTPSConnection(*running.base, context=context, timeout=10)
        connection.request(
            "POST", "/v1/authorize", body=json.dumps(BODY),
            headers={"Authorization": f"Bearer {tok}"},
        )  # fmt: skip
        response = connection.getresponse()
        answer = json.loads(response.read())
        connection.close()
        assert (response.status, answer["allowed"]) == (200, True)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            call(running, "GET", "/healthz")  # plain HTTP on the TLS port


def test_forwarded_for_counts_only_from_a_trusted_proxy(
    settings: Settings, redis: Any, tmp_path: Path
) -> None:
    world(settings, redis)
    tok = token(redis, f"sw-{uuid.uuid4().hex[:8]}", "R1", networks="192.0.2.0/24")
    forwarded = {"X-Forwarded-For": "192.0.2.10"}
    with serve(settings, tmp_path) as direct:  # no trusted proxy: the header is ignored
        status, _, _ = call(direct, "POST", "/v1/authorize", BODY, token=tok, headers=forwarded)
        assert status == 403
    proxied = settings.replace(http_trusted_proxies="127.0.0.1")
    with serve(proxied, tmp_path) as behind:
        status, answer, _ = call(
            behind, "POST", "/v1/authorize", BODY, token=tok, headers=forwarded
        )
        assert (status, answer["allowed"]) == (200, True)
        status, _, _ = call(
            behind, "POST", "/v1/authorize", BODY, token=tok,
            headers={"X-Forwarded-For": "203.0.113.9"},
        )  # fmt: skip
        assert status == 403


def test_an_oversized_request_head_is_431(settings: Settings, tmp_path: Path) -> None:
    with serve(settings, tmp_path) as running, socket.create_connection(running.base, 10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"y" * 20_000 + b"\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65_536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
    assert b'"field":"headers"' in reply
