"""`POST /utils/backup`: a consistent copy of the catalog, written by the running service."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody

from api.backup_schemas import BackupIn, BackupOut
from api.errors import ErrorBody, error_responses
from api.schemas import TIME_FORMAT
from catalog import BackupResult, Catalog
from ingestor import Ingestor, protected_folders

_DESCRIPTION = (
    "Writes the catalog file and the files uploaded into tables to the folder `to`, with a "
    "`manifest.json` that lists each file's size and xxh3-128 digest. The copy runs between two "
    "catalog writes: writes wait for it and reads go on. `to` is an absolute path on the service's "
    "machine, of a new or empty folder whose parent exists, outside the catalog's folder, the "
    "uploads and spill folders and every workflow location (400 otherwise). A folder that can "
    "never be written (read-only, path too long, permission denied) is 400 too. A disk error "
    "while writing, or a copy that holds catalog writes longer than catalog.backup_timeout_seconds, "
    "removes the partial backup and returns 503. `depictiod restore --from <folder>` "
    "restores it while the service is stopped."
)


class BackupController(Controller):
    path = "/utils"
    tags = ["utils"]

    @post(
        "/backup",
        status_code=200,
        sync_to_thread=True,
        opt={"access": "admin"},
        summary="Write a backup of the catalog into a folder (administrators)",
        description=_DESCRIPTION,
        responses={
            **error_responses(401, 403, 413),
            400: ResponseSpec(
                ErrorBody,
                description="The folder is not absolute, not empty, in a protected place, or cannot be written",
            ),
            503: ResponseSpec(
                ErrorBody, description="Writing the backup failed or timed out; the partial backup was removed"
            ),
        },
    )
    def backup(self, request: Request[Any, Any, Any], data: JSONBody[BackupIn]) -> BackupOut:
        catalog: Catalog = request.app.state.catalog
        ingestor: Ingestor = request.app.state.ingestor
        uploads_folder = ingestor.uploads.root
        protected = protected_folders(request.app.state.settings, list(ingestor.projects), uploads_folder)
        return backup_out(catalog.backups.write(data.to, uploads_folder, protected))


def backup_out(result: BackupResult) -> BackupOut:
    manifest = result.manifest
    return BackupOut(
        path=result.folder,
        catalog_path=manifest.catalog_path,
        created_at=manifest.created_at.strftime(TIME_FORMAT),
        schema_version=manifest.schema_version,
        files=len(manifest.files),
        size_bytes=manifest.size_bytes,
        tables=len(manifest.tables),
        uploads=manifest.uploads,
        missing_uploads=manifest.missing_uploads,
        checkpointed=manifest.checkpointed,
        writes_paused_seconds=manifest.writes_paused_seconds,
        seconds=manifest.seconds,
    )
