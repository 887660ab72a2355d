"""The catalog: the one DuckDB file with runs, files, tables, users and tokens."""

from __future__ import annotations

from catalog.backup import (
    BackupManifest,
    BackupRepository,
    BackupResult,
    BackupTargetError,
    BackupWriteError,
    LastBackup,
    ProtectedFolder,
)
from catalog.build import BuildRequest, BuildResult, FileResult
from catalog.dashboards import DashboardChanges, DashboardRecord, DashboardRepository
from catalog.errors import (
    CatalogError,
    CatalogLockedError,
    CatalogUnwritableError,
    ConflictError,
    NotFoundError,
    SchemaVersionError,
)
from catalog.events import (
    EVENT_TYPES,
    GAP_EVENT,
    Event,
    EventData,
    EventLog,
    Gap,
    Subscription,
    SubscriptionClosedError,
)
from catalog.external_tables import ExternalTableRecord, ExternalTableRepository
from catalog.failures import FAILURE_REASONS, os_error_reason
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
from catalog.relay import EventRelay
from catalog.restore import (
    BEFORE_RESTORE_SUFFIX,
    InvalidBackupError,
    RestoreError,
    RestoreResult,
    restore_backup,
    verify_backup,
)
from catalog.runs_files import FileRepository, RunRepository, SyncCounts, utc_now
from catalog.scans import ScanRepository
from catalog.schema import SCHEMA_VERSION
from catalog.sql import QueryResult, SqlRepository, SqlTimeoutError
from catalog.sql_check import QuerySources, SqlError
from catalog.stats import CatalogStats, read_stats
from catalog.store import Store
from catalog.tables import TableRepository, TableSnapshot, fingerprint
from catalog.users import TokenRepository, UserRepository, email_key, user_id_for
from config import CatalogSettings


class Catalog:
    """The catalog of one service: a DuckDB file and one repository per kind of record."""

    def __init__(self, path: str, settings: CatalogSettings | None = None) -> None:
        self.store = Store(path, settings)
        # Change events, published after each commit; see catalog.events.
        self.events = EventLog(
            (settings or CatalogSettings(path=path)).event_history,
            places=self._collection_place,
            workflow_projects=self._workflow_project,
        )
        self.projects = ProjectRepository(self.store)
        self.runs = RunRepository(self.store)
        self.files = FileRepository(self.store, self.events)
        self.tables = TableRepository(self.store, self.events)
        self.users = UserRepository(self.store)
        self.tokens = TokenRepository(self.store)
        self.scans = ScanRepository(self.store)
        self.registry = Registry(self.store, self.events)
        self.dashboards = DashboardRepository(self.store)
        self.external_tables = ExternalTableRepository(self.store)
        self.sql = SqlRepository(self.store)
        self.joins = JoinRepository(self.store, self.events)
        self.backups = BackupRepository(self.store, (settings or CatalogSettings(path=path)).backup_timeout_seconds)
        # The processes of a DuckLake catalog stream each other's change events.
        self.relay = EventRelay(self.store, self.events) if self.store.lake else None
        try:
            self.tables.drop_scratch_tables()
            if self.relay is not None:
                self.relay.start()
        except BaseException:
            # An interrupt here must not leave the file open: the caller gets no catalog to close.
            self.store.close()
            raise

    @property
    def path(self) -> str:
        return self.store.path

    def stats(self) -> CatalogStats:
        """Count the runs, files and table rows, and measure the catalog's files on disk."""
        return read_stats(self.store)

    def close(self) -> None:
        if self.relay is not None:
            self.relay.stop()
        self.events.close()
        self.store.close()

    def _collection_place(self, collection_id: str) -> tuple[str, str | None, str] | None:
        """Return (project id, workflow id, tag) of a data collection, for its events."""
        row = self.store.query_one(
            "SELECT project_id, workflow_id, tag FROM data_collections WHERE id = ?", [collection_id]
        )
        if row is None:
            return None
        return str(row[0]), None if row[1] is None else str(row[1]), str(row[2])

    def _workflow_project(self, workflow_id: str) -> str | None:
        row = self.store.query_one("SELECT project_id FROM workflows WHERE id = ?", [workflow_id])
        return None if row is None else str(row[0])


__all__ = [
    "BEFORE_RESTORE_SUFFIX",
    "EVENT_TYPES",
    "FAILURE_REASONS",
    "FORMATS",
    "GAP_EVENT",
    "SCHEMA_VERSION",
    "BackupManifest",
    "BackupRepository",
    "BackupResult",
    "BackupTargetError",
    "BackupWriteError",
    "BuildRequest",
    "BuildResult",
    "Catalog",
    "CatalogError",
    "CatalogLockedError",
    "CatalogStats",
    "CatalogUnwritableError",
    "CollectionRecord",
    "ColumnSpec",
    "ConflictError",
    "DashboardChanges",
    "DashboardRecord",
    "DeleteCounts",
    "DriftNote",
    "Event",
    "EventData",
    "EventLog",
    "ExternalTableRecord",
    "FileRecord",
    "FileResult",
    "Gap",
    "InvalidBackupError",
    "JoinOutcome",
    "JoinPlan",
    "JoinRepository",
    "JoinStatus",
    "LastBackup",
    "NotFoundError",
    "ProjectRecord",
    "ProtectedFolder",
    "QueryResult",
    "QuerySources",
    "Registry",
    "RestoreError",
    "RestoreResult",
    "RunRecord",
    "ScanReport",
    "SchemaVersionError",
    "SourceFile",
    "SqlError",
    "SqlTimeoutError",
    "Subscription",
    "SubscriptionClosedError",
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
    "os_error_reason",
    "restore_backup",
    "user_id_for",
    "utc_now",
    "verify_backup",
]
