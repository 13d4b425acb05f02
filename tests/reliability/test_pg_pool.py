"""The PostgreSQL pool when it runs out: its timeout says which case it is, from the pool's
own statistics (every connection busy, or none could be made), and after an outage the
same app works again without being reopened.

The outage is real at the network level: the app reaches the server through a TCP relay
in this process, which the test stops (every connection cut, new ones refused) and starts
again on the same port. The shared server itself is never restarted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

import aicmo
from aicmo.errors import BackendError

from .support import fresh_database


class Relay:
    """A TCP relay from a loopback port to the server, that can be cut and restored."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.port = 0
        self._server: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and close every relayed connection."""
        with self._lock:
            server, self._server = self._server, None
            conns, self._open = self._open, []
        if server is not None:
            server.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._server is not server:
                    client.close()
                    upstream.close()
                    return
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def relayed(tmp_path: Path) -> Iterator[tuple[Relay, str]]:
    """A migrated schema reached through a relay: the relay and the relayed URL."""
    direct = fresh_database("postgresql", tmp_path)
    info = conninfo_to_dict(direct)
    relay = Relay(str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432))
    host_port = f"{info.get('host') or '127.0.0.1'}:{info.get('port') or 5432}"
    url = direct.replace(f"@{host_port}/", f"@127.0.0.1:{relay.port}/", 1)
    assert url != direct
    yield relay, url
    relay.cut()


def test_a_pool_timeout_with_every_connection_busy_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = fresh_database("postgresql", tmp_path)
    monkeypatch.setenv("AICMO_DB_POOL_SIZE", "1")
    monkeypatch.setenv("AICMO_DB_POOL_TIMEOUT", "0.5")
    with aicmo.connect(url) as app:
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with app.transaction():
                app.list_runs()
                holding.set()
                release.wait(60)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert holding.wait(60)
            with pytest.raises(BackendError) as info:
                app.list_runs()
        finally:
            release.set()
            holder.join(60)
        message = str(info.value)
        assert "all 1 connections of the pool are in use by other threads" in message
        assert "AICMO_DB_POOL_SIZE" in message
        assert "unreachable" not in message
        assert app.list_runs() == []


def test_a_pool_timeout_in_an_outage_says_so_and_the_pool_recovers(
    relayed: tuple[Relay, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    relay, url = relayed
    monkeypatch.setenv("AICMO_DB_POOL_SIZE", "2")
    monkeypatch.setenv("AICMO_DB_POOL_TIMEOUT", "1")
    with aicmo.connect(url, auto_upgrade=False) as app:
        assert app.list_runs() == []
        relay.cut()
        deadline = time.monotonic() + 60
        while True:  # the first calls may meet a cut connection (TransientError)
            with pytest.raises(BackendError) as info:
                app.list_runs()
            if "became available within 1s" in str(info.value):
                break
            assert time.monotonic() < deadline, info.value
        message = str(info.value)
        assert "the server could not be reached or kept dropping connections" in message
        assert "connection attempt(s) failed" in message
        assert "in use by other threads" not in message
        relay.start()  # the outage ends: the same app works again
        deadline = time.monotonic() + 120
        while True:
            try:
                assert app.list_runs() == []
                break
            except BackendError:
                assert time.monotonic() < deadline, "the pool never reconnected"
                time.sleep(0.2)
        assert app.submit(Path(__file__).parents[2] / "examples" / "acme-saas.toml")
