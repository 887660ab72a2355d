"""Configuration: service settings (depictio.toml) and Depictio project YAML files."""

from config.errors import ConfigError, ConfigProblem
from config.ids import derive_id, is_object_id
from config.load_project import TAG_PATTERN, compile_file_pattern, load_project, load_project_document
from config.project import (
    DataCollection,
    DataCollectionConfig,
    DataLocation,
    Granularity,
    Join,
    Link,
    Permissions,
    Project,
    TableProperties,
    Workflow,
)
from config.projects import load_projects
from config.reader_options import ReaderOptions, parse_reader_options
from config.settings import (
    CatalogSettings,
    Settings,
    WorkflowTimings,
    check_workflow_overrides,
    environment_names,
    load_settings,
    parse_memory_limit,
)

__all__ = [
    "TAG_PATTERN",
    "CatalogSettings",
    "ConfigError",
    "ConfigProblem",
    "DataCollection",
    "DataCollectionConfig",
    "DataLocation",
    "Granularity",
    "Join",
    "Link",
    "Permissions",
    "Project",
    "ReaderOptions",
    "Settings",
    "TableProperties",
    "Workflow",
    "WorkflowTimings",
    "check_workflow_overrides",
    "compile_file_pattern",
    "derive_id",
    "environment_names",
    "is_object_id",
    "load_project",
    "load_project_document",
    "load_projects",
    "load_settings",
    "parse_memory_limit",
    "parse_reader_options",
]
