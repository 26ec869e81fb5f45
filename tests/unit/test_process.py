"""The service manager, exercised with real short-lived processes."""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from datong.services import process
from datong.services.process import ServiceError, ServiceSpec, free_port, pid_alive


def spec(tmp_path: Path, script: str, health=lambda: False, **kw) -> ServiceSpec:
    return ServiceSpec(
        name="svc",
        command=[sys.executable, "-c", script],
        run_dir=tmp_path,
        ports=kw.pop("ports", []),
        health=health,
        **kw,
    )


def test_start_waits_for_health_and_stop_ends_process(tmp_path):
    marker = tmp_path / "ready"
    service = spec(
        tmp_path,
        f"import pathlib, time; pathlib.Path({str(marker)!r}).write_text('x'); time.sleep(60)",
        health=marker.exists,
    )
    pid = process.start(service)
    assert pid_alive(pid)
    assert service.pid_file.read_text().strip() == str(pid)
    assert process.status(service).healthy
    # Starting again while healthy returns the same process, no second copy.
    assert process.start(service) == pid
    assert process.stop(service) is True
    assert not pid_alive(pid)
    assert not service.pid_file.exists()
    assert process.stop(service) is False


def test_process_that_dies_while_starting_is_reported_with_its_log(tmp_path):
    service = spec(tmp_path, "import sys; print('bad config: no such property'); sys.exit(3)")
    with pytest.raises(ServiceError) as caught:
        process.start(service)
    message = str(caught.value)
    assert "exited with code 3" in message
    assert "bad config: no such property" in message
    assert str(service.log_file) in message
    assert not service.pid_file.exists()


def test_unhealthy_service_times_out_and_leaves_no_orphan(tmp_path):
    service = spec(tmp_path, "import time; time.sleep(60)", start_timeout=1.5, stop_grace=1)
    with pytest.raises(ServiceError, match="did not become healthy within 2s"):
        process.start(service)
    # The pid file is gone and nothing from this spec is still running.
    assert not service.pid_file.exists()
    log = service.log_file.read_text()
    assert "datong starting svc" in log


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path):
    marker = tmp_path / "ready"
    script = (
        "import signal, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(marker)!r}).write_text('x'); time.sleep(120)"
    )
    service = spec(tmp_path, script, health=marker.exists, stop_grace=1.0)
    pid = process.start(service)
    began = time.monotonic()
    assert process.stop(service) is True
    assert not pid_alive(pid)
    assert 1.0 <= time.monotonic() - began < 10


def test_stop_sends_the_specs_stop_signal_first(tmp_path):
    # Like PostgreSQL: SIGINT is the quick shutdown, SIGTERM would wait (here: for ever).
    marker = tmp_path / "ready"
    script = (
        "import signal, sys, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(0)); "
        f"pathlib.Path({str(marker)!r}).write_text('x'); time.sleep(120)"
    )
    service = spec(
        tmp_path, script, health=marker.exists, stop_grace=30.0, stop_signal=signal.SIGINT
    )
    pid = process.start(service)
    began = time.monotonic()
    assert process.stop(service) is True
    assert not pid_alive(pid)
    assert time.monotonic() - began < 5


def test_port_already_taken_is_refused_before_starting(tmp_path):
    port = free_port()
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        service = spec(tmp_path, "import time; time.sleep(60)", ports=[port])
        with pytest.raises(ServiceError, match=f"port {port} on 127.0.0.1 is already in use"):
            process.start(service)
    assert not service.pid_file.exists()


def test_stale_pid_file_is_ignored(tmp_path):
    service = spec(tmp_path, "import time; time.sleep(60)")
    service.run_dir.mkdir(exist_ok=True)
    service.pid_file.write_text("999999999")
    assert process.status(service).running is False
    assert process.stop(service) is False
    assert not service.pid_file.exists()
