"""A real S3-compatible HTTP server for the tests (moto's standalone server on 127.0.0.1),
and an HTTP proxy in front of it that can answer 503 instead of forwarding.

Each test gets its own bucket (``s3_bucket``); nothing is mocked inside the client: boto3
talks HTTP to the server, through the proxy where a test injects faults.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("moto.server", reason="moto[server] (the test extra) runs the S3 server")
boto3 = pytest.importorskip("boto3", reason="boto3 (the s3 extra) is the S3 client")

from moto.server import ThreadedMotoServer  # noqa: E402

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "aicmo-test-key",
    "AWS_SECRET_ACCESS_KEY": "aicmo-test-secret-do-not-print",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def store_keys(store: Any, under: str = "") -> list[str]:
    """Every key an ``S3Store`` holds under its prefix (relative to it, sorted), read with
    its own client straight from the server."""
    base = f"{store.prefix}/{under}" if store.prefix else under
    pages = store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=base)
    cut = len(store.prefix) + 1 if store.prefix else 0
    return sorted(o["Key"][cut:] for page in pages for o in page.get("Contents", ()))


class MotoServer:
    """moto's S3 server on a free loopback port, for one test session (or one test)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def client(self, endpoint: str | None = None) -> Any:
        return boto3.session.Session(
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        ).client("s3", endpoint_url=endpoint or self.endpoint)


class Bucket:
    """A new bucket on the server; ``url`` is its aicmo store URL (with a prefix)."""

    def __init__(self, server: MotoServer, prefix: str = "aicmo/artifacts"):
        self.server = server
        self.name = f"aicmo-{uuid.uuid4().hex[:16]}"
        self.prefix = prefix
        self.client = server.client()
        self.client.create_bucket(Bucket=self.name)

    def url(self, endpoint: str | None = None, **params: str) -> str:
        query = {"endpoint": endpoint or self.server.endpoint, **params}
        return f"s3://{self.name}/{self.prefix}?" + "&".join(f"{k}={v}" for k, v in query.items())

    @property
    def location(self) -> str:
        return f"s3://{self.name}/{self.prefix}"

    def keys(self, under: str = "") -> list[str]:
        """Every key under the prefix (relative to it), sorted."""
        found: list[str] = []
        base = f"{self.prefix}/{under}"
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=base
        ):
            found.extend(o["Key"][len(self.prefix) + 1 :] for o in page.get("Contents", ()))
        return sorted(found)

    def final_keys(self) -> list[str]:
        """The keys outside the staging area."""
        return [k for k in self.keys() if not k.startswith(".staging/")]

    def read(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.name, Key=f"{self.prefix}/{key}")[
            "Body"
        ].read()
        return body

    def packages(self) -> set[str]:
        """The package ids that have a manifest (a package without one is not there)."""
        return {k.split("/")[0] for k in self.final_keys() if k.endswith("/manifest.json")}

    def check_manifest(self, package_id: str) -> None:
        """The manifest's sizes and SHA-256 checksums match the objects the server holds."""
        manifest = json.loads(self.read(f"{package_id}/manifest.json"))
        assert manifest["package_id"] == package_id
        names = sorted(
            k.split("/", 1)[1] for k in self.final_keys() if k.startswith(package_id + "/")
        )
        assert names == sorted([*(f["name"] for f in manifest["files"]), "manifest.json"])
        for entry in manifest["files"]:
            data = self.read(f"{package_id}/{entry['name']}")
            assert (len(data), hashlib.sha256(data).hexdigest()) == (
                entry["bytes"],
                entry["sha256"],
            ), f"{package_id}/{entry['name']} does not match its manifest"


class FailingProxy:
    """An HTTP proxy in front of the S3 server: forwards each request as it came (the
    signed Host header included), or answers ``503 ServiceUnavailable`` while ``failing``
    is set or ``fail_next`` requests are left to fail. Counts what it failed."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.failing = False
        self.fail_next = 0
        self.fail_after: int | None = None  # fail every request once this many went through
        self.failed = 0
        self.forwarded = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._should_fail():
                    error = (
                        b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable'
                        b"</Code><Message>injected by the test</Message></Error>"
                    )
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _should_fail(self) -> bool:
        with self._lock:
            if self.fail_after is not None and self.forwarded >= self.fail_after:
                self.failing = True
            if self.failing or self.fail_next > 0:
                self.fail_next = max(0, self.fail_next - 1)
                self.failed += 1
                return True
            self.forwarded += 1
            return False

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """One moto S3 server for the test session (of this xdist worker)."""
    with moto_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A new bucket for this test, with the test credentials in the AWS variables."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    return Bucket(s3_server)
