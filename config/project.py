"""Depictio project YAML as typed msgspec Structs.

Field names follow Depictio's project format (depictio 1.5.1 models), so existing project
files load unchanged. `config.load_project` fills the resolved values (absolute locations,
derived ids and tags) after checking the raw YAML.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Structure = Literal["flat", "sequencing-runs"]
DataCollectionType = Literal["table", "jbrowse2", "multiqc", "image", "geojson", "phylogeny"]
DataCollectionSource = Literal["native", "joined", "transformed", "aggregated"]
TableFormat = Literal["csv", "tsv", "parquet", "feather", "xls", "xlsx"]
ScanMode = Literal["single", "recursive"]
JoinHow = Literal["inner", "left", "right", "outer", "full"]


class _Model(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=False):
    """Fields that every Depictio document carries."""

    id: str | None = None
    description: str | None = None
    flexible_metadata: dict[str, Any] | None = None
    hash: str | None = None


class Wildcard(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    wildcard_regex: str


class RegexConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pattern: str
    wildcards: list[Wildcard] = msgspec.field(default_factory=list)


class ScanRecursive(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    regex_config: RegexConfig
    max_depth: int | None = None
    ignore: list[str] | None = None


class ScanSingle(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    filename: str


class Scan(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mode: ScanMode
    # Checked against ScanSingle or ScanRecursive by mode in config.load_project.
    scan_parameters: dict[str, Any]


class TableProperties(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`dc_specific_properties` of a table data collection."""

    format: TableFormat
    polars_kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    keep_columns: list[str] | None = None
    columns_description: dict[str, str] | None = None
    lat_column: str | None = None
    lon_column: str | None = None
    crs: str | None = None


class ImageProperties(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: Literal["csv", "tsv", "parquet", "feather", "xls", "xlsx", "mixed"]
    image_column: str
    polars_kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    keep_columns: list[str] | None = None
    columns_description: dict[str, str] | None = None
    s3_base_folder: str | None = None
    local_images_path: str | None = None
    supported_formats: list[str] | None = None
    thumbnail_size: int = 150


class MultiQCProperties(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    samples: list[str] | None = None
    modules: list[str] | None = None
    plots: dict[str, Any] | None = None
    s3_location: str | None = None
    processed_files: int | None = None
    file_size_bytes: int | None = None


class GeoJSONProperties(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    feature_id_key: str = "id"
    s3_location: str | None = None
    file_size_bytes: int | None = None


class PhylogenyProperties(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: Literal["newick", "nexus"] = "newick"
    ladderize: bool = True
    metadata_dc_tag: str | None = None
    metadata_taxon_column: str = "taxon"
    tip_label_strategy: Literal["taxon", "first_token"] = "taxon"


class JBrowse2Properties(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    index_extension: str | None = None
    jbrowse_template_location: str | None = None


PROPERTIES_BY_TYPE: dict[str, type[msgspec.Struct]] = {
    "table": TableProperties,
    "image": ImageProperties,
    "multiqc": MultiQCProperties,
    "geojson": GeoJSONProperties,
    "phylogeny": PhylogenyProperties,
    "jbrowse2": JBrowse2Properties,
}


class LegacyJoin(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    on_columns: list[str]
    with_dc: list[str] | str
    how: Literal["inner", "outer", "left", "right"] = "inner"


class SourceOverride(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    path: str | None = None
    glob_pattern: str | None = None


class Transform(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    recipe: str
    source_overrides: dict[str, SourceOverride] | None = None


class DataCollectionConfig(_Model):
    type: DataCollectionType
    dc_specific_properties: dict[str, Any]
    source: DataCollectionSource = "native"
    metatype: str | None = None
    scan: Scan | None = None
    join: LegacyJoin | None = None
    transform: Transform | None = None


class DataCollection(_Model):
    data_collection_tag: str
    config: DataCollectionConfig
    optional: bool = False


class DataLocation(_Model):
    structure: Structure
    locations: list[str]
    runs_regex: str | None = None
    # Depictio 1.19 clients send the locations attached with `ingest --attach-run`; kept as sent.
    attached_locations: list[str] | None = None


class Engine(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    version: str | None = None


class Catalog(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Literal["workflowhub", "nf-core", "smk-wf-catalog"]
    url: str


class WorkflowConfig(_Model):
    version: str | None = None
    workflow_parameters: dict[str, Any] | None = None
    # Filled by Depictio 1.19 clients from a run's provenance; kept as sent.
    engine_name: str | None = None
    pipeline_version: str | None = None
    nextflow_version: str | None = None
    tools_executed: list[str] | None = None


class Workflow(_Model):
    name: str
    engine: Engine
    data_location: DataLocation
    data_collections: list[DataCollection]
    version: str | None = None
    catalog: Catalog | None = None
    workflow_tag: str | None = None
    repository_url: str | None = None
    runs: dict[str, Any] = msgspec.field(default_factory=dict)
    config: WorkflowConfig | None = None
    registration_time: str | None = None


class Granularity(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    aggregate_to: str
    numeric_default: str = "mean"
    categorical_default: str = "first"
    column_overrides: list[dict[str, str]] = msgspec.field(default_factory=list)


class Join(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str
    left_dc: str
    right_dc: str
    on_columns: list[str]
    id: str | None = None
    how: JoinHow = "inner"
    description: str | None = None
    granularity: Granularity | None = None
    persist: bool = True
    workflow_name: str | None = None
    # Result fields that the Depictio CLI writes back after running a join.
    result_dc_id: str | None = None
    result_dc_tag: str | None = None
    delta_location: str | None = None
    executed_at: str | None = None
    row_count: int | None = None
    column_count: int | None = None
    size_bytes: int | None = None


class LinkConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    resolver: Literal["direct", "sample_mapping", "pattern", "regex", "wildcard"] = "direct"
    mappings: dict[str, Any] | None = None
    pattern: str | None = None
    target_field: str | None = None
    case_sensitive: bool = True


class Link(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    source_column: str
    target_type: Literal["table", "multiqc", "image"]
    id: str | None = None
    source_dc_id: str | None = None
    source_dc_tag: str | None = None
    target_dc_id: str | None = None
    target_dc_tag: str | None = None
    link_config: LinkConfig = msgspec.field(default_factory=LinkConfig)
    description: str | None = None
    enabled: bool = True


class Permissions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The users who may read or change a project: ids or e-mail addresses, `"*"` for all viewers."""

    owners: list[str | dict[str, Any]] = msgspec.field(default_factory=list)
    editors: list[str | dict[str, Any]] = msgspec.field(default_factory=list)
    viewers: list[str | dict[str, Any]] = msgspec.field(default_factory=list)
    # Depictio 1.19 group roles. depictiod has no groups: the API accepts only empty lists.
    group_owners: list[Any] = msgspec.field(default_factory=list)
    group_editors: list[Any] = msgspec.field(default_factory=list)
    group_viewers: list[Any] = msgspec.field(default_factory=list)


class Realtime(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    debounce_ms: int = 1000
    watch_data_collections: list[str] | None = None


class Project(_Model):
    name: str
    project_type: Literal["basic", "advanced"] = "basic"
    is_public: bool = False
    workflows: list[Workflow] = msgspec.field(default_factory=list)
    data_collections: list[DataCollection] = msgspec.field(default_factory=list)
    joins: list[Join] = msgspec.field(default_factory=list)
    links: list[Link] = msgspec.field(default_factory=list)
    yaml_config_path: str | None = None
    data_management_platform_project_url: str | None = None
    permissions: Permissions | None = None
    registration_time: str | None = None
    last_modified: str | None = None
    realtime: Realtime | None = None
    template_origin: dict[str, Any] | None = None
    # How a Depictio 1.19 client created the project (manual, watch ...); kept as sent.
    triggered_by: str | None = None
