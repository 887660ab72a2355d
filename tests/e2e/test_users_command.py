"""`depictiod users` as an administrator runs it on a stopped service's catalog."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from api.security import verify_password
from catalog import Catalog, TokenRecord, utc_now

COMMAND_DEADLINE_SECONDS = 60


def _settings(root: Path) -> Path:
    # The listed project file does not exist: managing users must not need the projects.
    settings = root / "depictio.toml"
    settings.write_text(
        f'projects = ["{root / "missing-project.yaml"}"]\n'
        f'[catalog]\npath = "{root / "catalog.duckdb"}"\n'
        f'[auth]\nkey_file = "{root / "auth.key"}"\n',
        encoding="utf-8",
    )
    return settings


def _users(root: Path, *arguments: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "depictiod", "users", "--config", str(_settings(root)), *arguments],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_DEADLINE_SECONDS,
    )


def test_add_reads_password_from_stdin(tmp_path: Path) -> None:
    result = _users(tmp_path, "add", "ada@example.org", stdin="ada-password\n")

    assert result.returncode == 0, result.stderr
    assert "created user ada@example.org" in result.stdout
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    try:
        user = catalog.users.get_by_email("ada@example.org")
    finally:
        catalog.close()
    assert user is not None
    assert user.is_admin is False
    assert verify_password(user.password_hash, "ada-password")
    assert "ada-password" not in result.stdout + result.stderr


def test_add_admin_and_list(tmp_path: Path) -> None:
    _users(tmp_path, "add", "boss@example.org", "--admin", stdin="boss-password\n")
    _users(tmp_path, "add", "staff@example.org", stdin="staff-password\n")

    result = _users(tmp_path, "list")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    boss = next(line for line in lines if "boss@example.org" in line)
    staff = next(line for line in lines if "staff@example.org" in line)
    assert boss.split()[2] == "yes"
    assert staff.split()[2] == "no"
    assert "argon2" not in result.stdout


def test_add_rejects_short_password(tmp_path: Path) -> None:
    result = _users(tmp_path, "add", "weak@example.org", stdin="short\n")
    listed = _users(tmp_path, "list")

    assert result.returncode == 1
    assert "at least 8" in result.stderr
    assert "Traceback" not in result.stderr
    assert "weak@example.org" not in listed.stdout


def test_add_rejects_duplicate(tmp_path: Path) -> None:
    _users(tmp_path, "add", "twice@example.org", stdin="first-password\n")

    result = _users(tmp_path, "add", "TWICE@example.org", stdin="second-password\n")

    assert result.returncode == 1
    assert "already exists" in result.stderr
    assert "Traceback" not in result.stderr


def test_add_takes_no_password_argument(tmp_path: Path) -> None:
    result = _users(tmp_path, "add", "argv@example.org", "--password", "visible-password")

    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr


def test_set_admin_grants_and_keeps_last_admin(tmp_path: Path) -> None:
    _users(tmp_path, "add", "first@example.org", "--admin", stdin="first-password\n")
    _users(tmp_path, "add", "second@example.org", stdin="second-password\n")

    granted = _users(tmp_path, "set-admin", "second@example.org", "true")
    withdrawn = _users(tmp_path, "set-admin", "first@example.org", "false")
    last = _users(tmp_path, "set-admin", "second@example.org", "false")

    assert granted.returncode == 0, granted.stderr
    assert "is now an administrator" in granted.stdout
    assert withdrawn.returncode == 0, withdrawn.stderr
    assert last.returncode == 1
    assert "last administrator" in last.stderr


def test_set_admin_unknown_user_fails(tmp_path: Path) -> None:
    result = _users(tmp_path, "set-admin", "nobody@example.org", "true")

    assert result.returncode == 1
    assert "no user has the e-mail address 'nobody@example.org'" in result.stderr


def test_reset_password_revokes_tokens(tmp_path: Path) -> None:
    _users(tmp_path, "add", "reset@example.org", stdin="old-password\n")
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    try:
        user = catalog.users.get_by_email("reset@example.org")
        assert user is not None
        catalog.tokens.add(
            TokenRecord(
                id="00000000000000000000abcd",
                user_id=user.id,
                name="session",
                token_lifetime="short-lived",
                jti="a" * 32,
                expire_datetime=utc_now() + timedelta(hours=1),
                created_at=utc_now(),
                revoked=False,
            )
        )
    finally:
        catalog.close()

    result = _users(tmp_path, "reset-password", "reset@example.org", stdin="new-password\n")

    assert result.returncode == 0, result.stderr
    assert "revoked 1 tokens" in result.stdout
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    try:
        changed = catalog.users.get_by_email("reset@example.org")
        tokens = catalog.tokens.list_for_user(user.id)
    finally:
        catalog.close()
    assert changed is not None
    assert verify_password(changed.password_hash, "new-password")
    assert not verify_password(changed.password_hash, "old-password")
    assert tokens == []
