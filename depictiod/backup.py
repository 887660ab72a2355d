"""`depictiod backup` and `depictiod restore`.

DuckDB lets one process open the catalog file, so while a service runs, `backup` sends it
`POST /utils/backup` with an administrator's token, and the service writes the backup.
Otherwise the command opens the catalog itself. `restore` needs the service stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

import msgspec

from api.auth import API_PREFIX
from api.backup_schemas import BackupOut
from api.controllers.backup import backup_out
from catalog import (
    BEFORE_RESTORE_SUFFIX,
    BackupTargetError,
    BackupWriteError,
    Catalog,
    CatalogLockedError,
    InvalidBackupError,
    RestoreError,
    restore_backup,
    verify_backup,
)
from config import Project, Settings
from ingestor import protected_folders
from ingestor.uploads import UploadFolder

# The environment variable that may hold the administrator's token for `backup`.
TOKEN_VARIABLE = "DEPICTIO_TOKEN"
# Seconds that `backup` waits for a running service to write the backup: it copies the
# whole catalog, which may take minutes for one of many GB.
SERVICE_TIMEOUT_SECONDS = 3600
# Listening on every address also means listening on loopback, which is where the command sends requests.
_ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class _BackupCommandError(Exception):
    """Raised when the backup request cannot be sent to the running service, or the service rejects it."""


def run_backup(arguments: argparse.Namespace, settings: Settings, projects: list[Project]) -> int:
    """Write a backup of the catalog, through the running service when there is one; return the exit code."""
    target = os.path.abspath(arguments.to)
    path = settings.catalog.path
    if not os.path.exists(path):
        print(f"depictiod: there is no catalog at {path!r} to back up; check catalog.path", file=sys.stderr)
        return 1
    try:
        catalog = Catalog(path, settings.catalog)
    except CatalogLockedError as error:
        return _backup_through_service(arguments, settings, target, error.pid)

    try:
        sent = [record.project for record in catalog.projects.list_sent()]
        uploads = UploadFolder.for_catalog(path).root
        result = catalog.backups.write(target, uploads, protected_folders(settings, [*projects, *sent], uploads))
    except (BackupTargetError, BackupWriteError) as error:
        print(f"depictiod: {error}", file=sys.stderr)
        return 1
    finally:
        catalog.close()
    _print_backup(backup_out(result), f"made from the catalog file {path}; no service was running on it")
    return 0


def run_restore(arguments: argparse.Namespace, settings: Settings) -> int:
    """Check a backup and, without --check, put it in place of the catalog; return the exit code."""
    source = os.path.abspath(arguments.source)
    try:
        if arguments.check:
            manifest = verify_backup(source)
            print(
                f"backup {source} is valid: made at {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC, catalog schema "
                f"version {manifest.schema_version}, {len(manifest.files)} files, {_mebibytes(manifest.size_bytes)}"
            )
            return 0
        uploads = UploadFolder.for_catalog(settings.catalog.path).root
        result = restore_backup(source, settings.catalog.path, uploads, revoke_tokens=arguments.revoke_tokens)
    except (InvalidBackupError, RestoreError) as error:
        print(f"depictiod: {error}", file=sys.stderr)
        return 1
    manifest = result.manifest
    print(
        f"restored the catalog {result.catalog_path} from {source}, made at "
        f"{manifest.created_at:%Y-%m-%d %H:%M:%S} UTC, with {manifest.uploads} uploaded files"
    )
    for replaced in result.replaced:
        print(f"kept the replaced {replaced.removesuffix(BEFORE_RESTORE_SUFFIX)} as {replaced}")
    print("the next start scans every workflow location, so results written since the backup come back")
    if result.revoked_tokens is None:
        print(
            "warning: users, passwords and tokens are as they were at backup time, so accounts deleted and tokens "
            "revoked since then work again; run restore with --revoke-tokens to revoke every token"
        )
    else:
        print(f"revoked {result.revoked_tokens} tokens; every user and script must sign in again")
    return 0


def _backup_through_service(arguments: argparse.Namespace, settings: Settings, target: str, pid: int) -> int:
    url = arguments.url or _service_url(settings)
    try:
        token = _read_token(arguments.token_file)
        if token is None:
            raise _BackupCommandError(
                f"the catalog {settings.catalog.path!r} is in use by PID {pid}, so the service running on it must "
                f"write the backup. Give an administrator's token in a file with --token-file, or in the "
                f"environment variable {TOKEN_VARIABLE}"
            )
        out = _request_backup(url, token, target)
        _check_same_catalog(out, settings.catalog.path, url)
    except _BackupCommandError as error:
        print(f"depictiod: {error}", file=sys.stderr)
        return 1
    _print_backup(out, f"made by the service at {url} (PID {pid})")
    return 0


def _request_backup(url: str, token: str, target: str) -> BackupOut:
    request = urllib.request.Request(
        f"{url}{API_PREFIX}/utils/backup",
        data=json.dumps({"to": target}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    # No proxy: the service runs on this machine, and a proxy from the environment would not reach it.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=SERVICE_TIMEOUT_SECONDS) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        raise _BackupCommandError(
            f"the service at {url} rejected the backup ({error.code}): {_error_detail(error.read())}"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise _BackupCommandError(
            f"no depictiod service responds at {url} ({reason}); pass --url with the address of the service that "
            "holds the catalog"
        ) from None
    try:
        return msgspec.json.decode(body, type=BackupOut)
    except msgspec.DecodeError as error:
        raise _BackupCommandError(f"the service at {url} sent an invalid response: {error}") from None


def _check_same_catalog(out: BackupOut, catalog_path: str, url: str) -> None:
    """Raise _BackupCommandError when the service backed up another catalog than `catalog_path`."""
    if os.path.realpath(out.catalog_path) == os.path.realpath(catalog_path):
        return
    raise _BackupCommandError(
        f"the service at {url} holds the catalog {out.catalog_path!r}, not {catalog_path!r} of these settings, so "
        f"the backup in {out.path} is of the wrong catalog; delete it, and pass --url with the address of the "
        "service that holds the catalog"
    )


def _error_detail(body: bytes) -> str:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else body.decode(errors="replace")[:300]


def _read_token(token_file: str | None) -> str | None:
    if token_file is not None:
        try:
            with open(token_file, encoding="utf-8") as handle:
                return handle.readline().strip() or None
        except OSError as error:
            raise _BackupCommandError(f"the token file {token_file!r} cannot be read: {error.strerror}") from None
    return os.environ.get(TOKEN_VARIABLE) or None


def _service_url(settings: Settings) -> str:
    host = _ANY_ADDRESS.get(settings.server.host, settings.server.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.server.port}"


def _print_backup(out: BackupOut, origin: str) -> None:
    print(
        f"backup written to {out.path}: {out.files} files, {_mebibytes(out.size_bytes)}, {out.tables} tables, "
        f"{out.uploads} uploaded files; writes waited {out.writes_paused_seconds:.2f} s"
    )
    print(origin)
    if not out.checkpointed:
        print("note: the catalog could not be checkpointed first, so the backup includes its WAL")
    for location in out.missing_uploads:
        print(f"warning: the catalog lists the uploaded file {location}, which was missing; the backup lacks it")


def _mebibytes(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"
