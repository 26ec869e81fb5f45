"""Background service processes: started with a pid file and a log, health-checked, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    """A service could not be started; the message names the cause and the log file."""


@dataclass
class ServiceSpec:
    """How to run one service: its command, where it logs, and how to tell it is healthy."""

    name: str
    command: Sequence[str]
    run_dir: Path
    ports: Sequence[int]
    health: Callable[[], bool]
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    # Seconds to wait for health: Trino needs ~20 s on 2 cores, more when the machine is busy.
    start_timeout: float = 180.0
    # SeaweedFS ignores SIGTERM for several seconds; Trino shuts down gracefully in a few.
    stop_grace: float = 15.0
    # The signal that asks for a shutdown; SIGKILL follows after stop_grace. PostgreSQL
    # takes SIGTERM as a "smart" shutdown that waits for every client to leave: it uses SIGINT.
    stop_signal: int = signal.SIGTERM

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"{self.name}.log"


@dataclass
class ServiceStatus:
    """What ``datong status`` shows for one service."""

    name: str
    pid: int | None
    running: bool
    healthy: bool
    ports: Sequence[int]
    log_file: Path


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def free_port() -> int:
    """A port nobody listens on right now (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers with a 2xx status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    return True


def _log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def start(spec: ServiceSpec) -> int:
    """Start ``spec`` in its own process group; wait until healthy or fail with a clear cause.

    Already running and healthy: returns its pid. Any failure leaves no process behind.
    """
    spec.run_dir.mkdir(parents=True, exist_ok=True)
    pid = read_pid(spec.pid_file)
    if pid is not None and pid_alive(pid):
        if spec.health():
            return pid
        stop(spec)
    spec.pid_file.unlink(missing_ok=True)
    for port in spec.ports:
        if port_in_use(port):
            raise ServiceError(
                f"{spec.name}: port {port} on 127.0.0.1 is already in use by another process "
                f"(log: {spec.log_file})"
            )
    env = {**os.environ, **spec.env}
    with spec.log_file.open("ab") as log:
        log.write(f"\n---- datong starting {spec.name}: {time.ctime()} ----\n".encode())
        log.flush()
        process = subprocess.Popen(
            list(spec.command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=spec.cwd or spec.run_dir,
            env=env,
            start_new_session=True,
        )
    spec.pid_file.write_text(str(process.pid))
    deadline = time.monotonic() + spec.start_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            spec.pid_file.unlink(missing_ok=True)
            raise ServiceError(
                f"{spec.name} exited with code {process.returncode} while starting "
                f"(log: {spec.log_file}): {_log_tail(spec.log_file)}"
            )
        if spec.health():
            return process.pid
        time.sleep(0.5)
    stop(spec)
    raise ServiceError(
        f"{spec.name} did not become healthy within {spec.start_timeout:.0f}s "
        f"(log: {spec.log_file}): {_log_tail(spec.log_file)}"
    )


def stop(spec: ServiceSpec) -> bool:
    """Stop the process group in the pid file: ``stop_signal`` (SIGTERM unless the spec says
    otherwise), then SIGKILL after the grace period.

    Returns True when something was running.
    """
    pid = read_pid(spec.pid_file)
    if pid is None:
        return False
    was_running = pid_alive(pid)
    if was_running:
        _signal_group(pid, spec.stop_signal)
        deadline = time.monotonic() + spec.stop_grace
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.2)
        if pid_alive(pid):
            _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and pid_alive(pid):
                time.sleep(0.1)
    spec.pid_file.unlink(missing_ok=True)
    return was_running


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def status(spec: ServiceSpec) -> ServiceStatus:
    pid = read_pid(spec.pid_file)
    running = pid is not None and pid_alive(pid)
    return ServiceStatus(
        name=spec.name,
        pid=pid if running else None,
        running=running,
        healthy=running and spec.health(),
        ports=spec.ports,
        log_file=spec.log_file,
    )
