"""The two servers under test, each started fresh per scenario as a subprocess on a free port.

Both get the same settings where they have the same knob: loopback only, no persistence, a queue
limit high enough never to drop in these scenarios, 100 QoS 1 messages in flight per client
(Hongshan's default ``max_inflight``; Mosquitto's ``max_inflight_messages`` is set to match —
its own default is 20, at which Hongshan's QoS 1 fan-in falls to about 0.7x, see RESULTS.md),
and the open-files limit raised to the hard limit. Both log only warnings and errors, so
neither pays for a line per connection.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

MOSQUITTO = os.environ.get("MOSQUITTO", "/usr/sbin/mosquitto")
MAX_QUEUED = 1_000_000
MAX_INFLIGHT = 100
SERVERS = ("mosquitto", "hongshan")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass
class Server:
    name: str
    port: int
    process: psutil.Process
    log_path: Path | None = None  # its stdout and stderr (removed with it)

    def rss(self) -> int:
        """Resident bytes of the server and any processes it started."""
        return sum(p.memory_info().rss for p in self._tree())

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self._tree():
            times = p.cpu_times()
            total += times.user + times.system
        return total

    def _tree(self) -> list[psutil.Process]:
        return [self.process, *self.process.children(recursive=True)]


def raise_open_files_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def hongshan_command() -> list[str]:
    """The venv's ``hongshan`` script next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "hongshan"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("hongshan")
    return [found] if found else [sys.executable, "-m", "hongshan"]


def unavailable(name: str) -> str | None:
    """Why ``name`` cannot be benchmarked on this machine, or None if it can."""
    if name == "mosquitto":
        return None if os.access(MOSQUITTO, os.X_OK) else f"{MOSQUITTO} not found"
    try:
        done = subprocess.run(
            [*hongshan_command(), "serve", "--help"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"hongshan serve --help: {exc}"
    if done.returncode != 0:
        return "hongshan serve is not available yet: " + done.stderr.decode().strip()[-200:]
    return None


@contextmanager
def started(
    name: str,
    *,
    credentials: Credentials | None = None,
    prepare: Callable[[Path], None] | None = None,
    startup_timeout: float = 30.0,
    extra: Sequence[str] = (),
) -> Iterator[Server]:
    """Run server ``name`` for the duration of the block; anonymous unless ``credentials``.
    ``prepare`` is given Hongshan's data directory before it starts (to seed its registry);
    ``extra`` are more of Hongshan's ``serve`` flags."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        if name == "mosquitto":
            command = _mosquitto(workdir, port, credentials)
        elif name == "hongshan":
            command = [*_hongshan(workdir, port, credentials), *extra]
            if prepare is not None:
                prepare(workdir / "data")
        else:
            raise ValueError(f"unknown server {name!r}")
        log_path = workdir / "server.log"
        with log_path.open("wb") as log:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                preexec_fn=raise_open_files_limit,
            )
        try:
            _wait_for_port(child, port, startup_timeout, log_path)
            yield Server(name, port, psutil.Process(child.pid), log_path)
        finally:
            _stop(child)


@contextmanager
def with_http(
    http_port: int, *, prepare: Callable[[Path], None] | None = None, extra: Sequence[str] = ()
) -> Iterator[Server]:
    """Hongshan with its HTTP side on ``http_port``, once that is ready (after the broker)."""
    with started(
        "hongshan", prepare=prepare, extra=["--http-port", str(http_port), *extra]
    ) as server:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{http_port}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the HTTP side was not ready within 30 s")
            time.sleep(0.1)
        yield server


def admin_token(server: Server) -> str:
    """The admin token of a Hongshan ``started`` (in its data directory)."""
    assert server.log_path is not None  # (in its working directory, beside the data)
    return (server.log_path.parent / "data" / "admin.token").read_text().strip()


def _mosquitto(workdir: Path, port: int, credentials: Credentials | None) -> list[str]:
    lines = [
        f"listener {port} 127.0.0.1",
        "persistence false",
        "max_connections -1",
        f"max_queued_messages {MAX_QUEUED}",
        f"max_inflight_messages {MAX_INFLIGHT}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
    ]
    if credentials is None:
        lines.append("allow_anonymous true")
    else:
        passwords = workdir / "passwd"
        subprocess.run(
            ["mosquitto_passwd", "-b", "-c", str(passwords), *_pair(credentials)],
            check=True,
            capture_output=True,
        )
        # Mosquitto started as root reads the file after dropping to its own user.
        workdir.chmod(0o755)
        passwords.chmod(0o644)
        lines += ["allow_anonymous false", f"password_file {passwords}"]
    config = workdir / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    return [MOSQUITTO, "-c", str(config)]


def _hongshan(workdir: Path, port: int, credentials: Credentials | None) -> list[str]:
    hongshan = hongshan_command()
    data_dir = workdir / "data"
    data_dir.mkdir()
    command = [
        *hongshan,
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--mqtt-port",
        str(port),
        "--http-port",
        "0",
        "--max-queued-messages",
        str(MAX_QUEUED),
        "--max-inflight",
        str(MAX_INFLIGHT),
        "--log-level",
        "warning",
        # One load generator stands in for thousands of devices, with 100 CONNECTs in flight
        # from one address: more than the default cap a slowloris from one address is held to.
        "--max-pending-connections-per-address",
        "1000",
    ]
    if credentials is None:
        return [*command, "--allow-anonymous"]
    users = workdir / "users"
    username, password = _pair(credentials)
    subprocess.run(
        [*hongshan, "passwd", str(users), username, "--password", password],
        check=True,
        capture_output=True,
    )
    return [*command, "--password-file", str(users)]


def _pair(credentials: Credentials) -> tuple[str, str]:
    return credentials.username, credentials.password


def _wait_for_port(child: subprocess.Popen[bytes], port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"server exited with {child.returncode}:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"server did not accept connections on port {port} within {timeout} s")


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
