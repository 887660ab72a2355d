"""The catalog: the one DuckDB file with runs, files, tables, users and tokens."""

from __future__ import annotations

from catalog.build import BuildRequest, BuildResult, FileResult
from catalog.dashboards import DashboardChanges, DashboardRecord, DashboardRepository
from catalog.errors import CatalogError, ConflictError, NotFoundError, SchemaVersionError
from catalog.external_tables import ExternalTableRecord, ExternalTableRepository
from catalog.join_plans import JoinPlan, join_plans
from catalog.joins import JoinOutcome, JoinRepository, JoinStatus
from catalog.projects import ProjectRepository
from catalog.readers import FORMATS, SourceFile
from catalog.records import (
    CollectionRecord,
    ColumnSpec,
    DriftNote,
    FileRecord,
    ProjectRecord,
    RunRecord,
    ScanReport,
    TableRecord,
    TokenRecord,
    UserRecord,
    WorkflowRecord,
)
from catalog.registry import DeleteCounts, Registry, UpsertCounts
from catalog.runs_files import FileRepository, RunRepository, SyncCounts, utc_now
from catalog.scans import ScanRepository
from catalog.schema import SCHEMA_VERSION
from catalog.store import Store
from catalog.tables import TableRepository, TableSnapshot, fingerprint
from catalog.users import TokenRepository, UserRepository, email_key, user_id_for
from config import CatalogSettings


class Catalog:
    """The catalog of one service: a DuckDB file and one repository per kind of record."""

    def __init__(self, path: str, settings: CatalogSettings | None = None) -> None:
        self.store = Store(path, settings)
        self.projects = ProjectRepository(self.store)
        self.runs = RunRepository(self.store)
        self.files = FileRepository(self.store)
        self.tables = TableRepository(self.store)
        self.users = UserRepository(self.store)
        self.tokens = TokenRepository(self.store)
        self.scans = ScanRepository(self.store)
        self.registry = Registry(self.store)
        self.dashboards = DashboardRepository(self.store)
        self.external_tables = ExternalTableRepository(self.store)
        self.joins = JoinRepository(self.store)
        try:
            self.tables.drop_scratch_tables()
        except BaseException:
            # An interrupt here must not leave the file open: the caller gets no catalog to close.
            self.store.close()
            raise

    @property
    def path(self) -> str:
        return self.store.path

    def close(self) -> None:
        self.store.close()


__all__ = [
    "FORMATS",
    "SCHEMA_VERSION",
    "BuildRequest",
    "BuildResult",
    "Catalog",
    "CatalogError",
    "CollectionRecord",
    "ColumnSpec",
    "ConflictError",
    "DashboardChanges",
    "DashboardRecord",
    "DeleteCounts",
    "DriftNote",
    "ExternalTableRecord",
    "FileRecord",
    "FileResult",
    "JoinOutcome",
    "JoinPlan",
    "JoinRepository",
    "JoinStatus",
    "NotFoundError",
    "ProjectRecord",
    "Registry",
    "RunRecord",
    "ScanReport",
    "SchemaVersionError",
    "SourceFile",
    "SyncCounts",
    "TableRecord",
    "TableSnapshot",
    "TokenRecord",
    "UpsertCounts",
    "UserRecord",
    "WorkflowRecord",
    "email_key",
    "fingerprint",
    "join_plans",
    "user_id_for",
    "utc_now",
]
