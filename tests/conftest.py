"""Shared fixtures: a real Hongshan server on real sockets, in a thread or as a subprocess.

Servers bind port 0 (never 1883: a system Mosquitto is there) on 127.0.0.1. Blocking clients
(paho-mqtt, mosquitto_pub) run in the test's thread, so the in-process server gets a thread and
an event loop of its own.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from broker_peers import Paho
from history_places import HistoryPlace
from hongshan.store.registry.store import SQLRegistry
from installed import HONGSHAN
from registry_databases import POSTGRES_URL, RegistryDatabase
from server_thread import ServerThread, test_settings
from thingsboard_device import rest

T = TypeVar("T")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def make(**overrides: Any) -> ServerThread:
        server = ServerThread(test_settings(tmp_path, **overrides)).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., ServerThread]) -> ServerThread:
    """An anonymous-access server on a free port."""
    return make_server()


@pytest.fixture
def api(server: ServerThread) -> Iterator[httpx.Client]:
    """The ``server``'s REST API, as its administrator (the admin token)."""
    with rest(server) as client:
        yield client


def free_port() -> int:
    """A free port below the kernel's ephemeral range: no client's own end of a connection can
    take it (a device reconnecting on loopback to a server that was killed can connect to
    itself when its ephemeral port is the server's), so a server started again on it finds it
    free."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            ephemeral = int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    for _ in range(100):
        port = random.randrange(20_000, max(ephemeral, 20_001))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        found: int = sock.getsockname()[1]
        return found


class ServerProcess:
    """``hongshan serve`` as a user runs it, in a subprocess (for kill -9 and SIGTERM)."""

    def __init__(self, data_dir: Path, *args: str, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.args = args
        self.port = port or free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.log: list[str] = []

    def start(self, timeout: float = 30) -> ServerProcess:
        command = [
            HONGSHAN,
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--host",
            "127.0.0.1",
            "--mqtt-port",
            str(self.port),
            "--http-port",
            "0",
            "--sys-interval",
            "0",
            *self.args,
        ]
        self.proc = subprocess.Popen(
            command,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            with self.proc.stderr:
                for line in self.proc.stderr:
                    self.log.append(line)
                    if "hongshan ready" in line:
                        ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout):
            self.kill()
            raise RuntimeError("server did not start:\n" + "".join(self.log))
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def ports(self) -> dict[str, int]:
        found = {}
        for line in self.log:
            match = re.search(r"listening (\w+) [\d.]+:(\d+)", line)
            if match:
                found[match.group(1)] = int(match.group(2))
        return found


@pytest.fixture
def spawn_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def spawn(*args: str, data_dir: Path | None = None, port: int | None = None) -> ServerProcess:
        proc = ServerProcess(data_dir or tmp_path / "data", *args, port=port).start()
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        proc.kill()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RegistryDatabase]:
    if request.param == "sqlite":
        yield RegistryDatabase(f"sqlite:///{tmp_path / 'registry.db'}")
        return
    import uuid

    import sqlalchemy as sa

    from hongshan.store.registry.engine import create_engine

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as db:
        db.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield RegistryDatabase(POSTGRES_URL, schema)
    finally:
        with admin.begin() as db:
            db.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
async def registry(registry_db: RegistryDatabase) -> AsyncIterator[SQLRegistry]:
    """A registry on each backend (``registry_db``), opened with ``KEY``, closed after. A
    module that needs more in it at the start (a product, a device) keeps a fixture of its
    own by this name."""
    opened = await registry_db.open()
    yield opened
    await opened.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def place(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[HistoryPlace]:
    """A history's place on each backend: a SQLite file, a PostgreSQL schema of its own."""
    found = HistoryPlace(request.param, tmp_path)
    await found.create()
    try:
        yield found
    finally:
        await found.drop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs for the data directory: a disk that can be filled up (skipped where a
    tmpfs cannot be mounted: it needs root)."""
    where = tmp_path / "small"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def paho_client() -> Iterator[Callable[..., Paho]]:
    """``paho_client(port, version=4|5, client_id=..., clean=..., ...)``, not yet connected."""
    made: list[Paho] = []

    def make(port: int, **kwargs: Any) -> Paho:
        client = Paho(port, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key (the TLS listener)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key
