"""A real HTTP receiver on 127.0.0.1 for the webhook tests: records every request (body,
headers, when it arrived and ended) and answers as told: 200, 500, or only after a delay
(to hang past a dispatcher's timeout). A closed port (nothing listening) refuses."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs


@attrs.define
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    started: float
    ended: float = 0.0
    status: int = 0

    @property
    def delivery(self) -> str:
        return self.headers["X-Aicmo-Delivery"]


class Receiver:
    """The server's state: what came in, and how to answer the next requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Received] = []
        self.script: list[tuple[int, float]] = []
        """(status, delay) answers for the next requests, in order; then ``default``."""
        self.default: tuple[int, float] = (200, 0.0)
        self.in_flight: dict[str, int] = {}
        self.overlaps: list[str] = []
        """Delivery ids that were being received twice at the same moment."""
        self.release = threading.Event()
        self.release.set()
        self.url = ""

    def answer(self) -> tuple[int, float]:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                done = [r for r in self.requests if r.ended]
                if len(done) >= count:
                    return done
            time.sleep(0.02)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}")


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def do_POST(self) -> None:
        receiver: Receiver = self.server.receiver
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        got = Received(self.path, dict(self.headers.items()), body, time.monotonic())
        delivery = got.headers.get("X-Aicmo-Delivery", "")
        with receiver.lock:
            receiver.requests.append(got)
            if receiver.in_flight.get(delivery):
                receiver.overlaps.append(delivery)
            receiver.in_flight[delivery] = receiver.in_flight.get(delivery, 0) + 1
        status, delay = receiver.answer()
        try:
            if delay:
                time.sleep(delay)
            receiver.release.wait(60)
            payload = b'{"ok": true}' if status < 300 else b"receiver says no"
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up (its timeout): recorded all the same
        finally:
            with receiver.lock:
                receiver.in_flight[delivery] -= 1
                got.status = status
                got.ended = time.monotonic()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 (an ephemeral port) in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    receiver = Receiver()
    server.receiver = receiver  # type: ignore[attr-defined]
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
