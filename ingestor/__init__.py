"""Ingestion: discover runs and files, register them, aggregate tables."""

from ingestor.aggregate import TABLE_TYPES, CollectionAggregate, aggregate_collection
from ingestor.backup_targets import protected_folders
from ingestor.progress import ProgressCallback, ScanProgress
from ingestor.scan import CollectionScan, WorkflowScan, scan_workflow
from ingestor.service import Ingestor, IngestStatus, ProjectScan

__all__ = [
    "TABLE_TYPES",
    "CollectionAggregate",
    "CollectionScan",
    "IngestStatus",
    "Ingestor",
    "ProgressCallback",
    "ProjectScan",
    "ScanProgress",
    "WorkflowScan",
    "aggregate_collection",
    "protected_folders",
    "scan_workflow",
]
