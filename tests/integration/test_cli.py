"""The `datong` command line against real services: queries, errors, start-up faults."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from datong.services.process import free_port
from datong.settings import Settings
from tests.trino_support import UNGRANTED_PASSWORD

pytestmark = pytest.mark.integration


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    access_key, secret_key = settings.s3_credentials
    env = {
        **os.environ,
        "DATONG_STATE_DIR": str(settings.state_dir),
        "DATONG_CACHE_DIR": str(settings.cache_dir),
        "DATONG_STORAGE_ROOT": settings.storage_root,
        "DATONG_TRINO_PORT": str(settings.trino_port),
        "DATONG_S3_ENDPOINT": settings.s3_endpoint,
        "DATONG_S3_ACCESS_KEY": access_key,
        "DATONG_S3_SECRET_KEY": secret_key,
        "COLUMNS": "200",
    }
    env.update(extra)
    return env


def datong(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datong.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_sql_prints_rows(platform_settings):
    result = datong(
        "sql", "SELECT 40 + 2 AS answer, '数通' AS name", env=cli_env(platform_settings)
    )
    assert result.returncode == 0, result.stderr
    assert "answer" in result.stdout and "42" in result.stdout and "数通" in result.stdout
    assert "(1 row)" in result.stdout


def test_sql_bad_query_reports_trino_message(platform_settings):
    result = datong("sql", "SELEC 1", env=cli_env(platform_settings))
    assert result.returncode == 1
    assert "SYNTAX_ERROR" in result.stderr
    assert "mismatched input 'SELEC'" in result.stderr


def test_sql_as_ungranted_user_is_denied(platform_settings):
    env = cli_env(platform_settings, DATONG_TRINO_PASSWORD=UNGRANTED_PASSWORD)
    result = datong("sql", "SHOW TABLES FROM lake.bronze", "--user", "nobody", env=env)
    assert result.returncode == 1
    assert "Access Denied: Cannot access catalog lake" in result.stderr


def test_sql_reads_the_password_from_the_named_variable(platform_settings):
    env = cli_env(platform_settings, NOBODY_PASSWORD="not-" + UNGRANTED_PASSWORD)
    command = ("sql", "SELECT 1", "--user", "nobody", "--password-env", "NOBODY_PASSWORD")
    result = datong(*command, env=env)
    assert result.returncode == 1
    assert "refused the password of 'nobody'" in result.stderr
    result = datong(*command, env={**env, "NOBODY_PASSWORD": UNGRANTED_PASSWORD})
    assert result.returncode == 0, result.stderr
    assert "(1 row)" in result.stdout


def test_sql_as_another_user_without_a_password_fails_clearly(platform_settings):
    env = cli_env(platform_settings)
    env.pop("DATONG_TRINO_PASSWORD", None)
    result = subprocess.run(
        [sys.executable, "-m", "datong.cli", "sql", "SELECT 1", "--user", "nobody"],
        env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 1
    assert "DATONG_TRINO_PASSWORD" in result.stderr


def test_status_shows_healthy_trino(platform_settings):
    result = datong("status", env=cli_env(platform_settings))
    assert result.returncode == 0
    trino_line = next(line for line in result.stdout.splitlines() if "trino" in line)
    assert "healthy" in trino_line and str(platform_settings.trino_port) in trino_line


def test_up_with_port_taken_fails_cleanly(tmp_path: Path):
    port = free_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    try:
        settings = Settings(state_dir=tmp_path, trino_port=port)
        result = datong("up", env=cli_env(settings))
    finally:
        blocker.close()
    assert result.returncode == 1
    message = result.stderr.replace("\n", "")
    assert f"port {port}" in message and "already in use" in message
    assert "trino.log" in message
    assert not (tmp_path / "run" / "trino.pid").exists()


def test_up_before_setup_says_what_to_do(tmp_path: Path):
    settings = Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "empty-cache")
    result = datong("up", env=cli_env(settings))
    assert result.returncode == 1
    assert "datong setup" in result.stderr
    assert not (tmp_path / "state" / "run" / "trino.pid").exists()
