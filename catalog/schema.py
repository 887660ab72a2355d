"""The catalog's tables and its schema version.

No primary keys, unique constraints or indexes: the same SQL must run on DuckLake, which
has none, so uniqueness is kept by the repositories in this package (delete, then insert).
"""

from __future__ import annotations

SCHEMA_VERSION = 6

# Aggregated tables live in their own schema, one table per data collection.
DATA_SCHEMA = "data"

# Column order of aggregated_tables, matching the fields of catalog.records.TableRecord.
AGGREGATED_TABLE_COLUMNS = (
    "data_collection_id, table_name, row_count, column_count, size_bytes, aggregation_version, "
    "aggregation_time, aggregation_hash, inputs_fingerprint, settings_fingerprint, drift"
)

# The contents of each aggregated table, file by file: the input a file was read at (run
# tag and content hash), its outcome and its own columns. A later update reads only the
# files whose input differs, and checks from these columns that the table's schema still fits.
TABLE_FILES = """CREATE TABLE IF NOT EXISTS table_files (
    data_collection_id VARCHAR, file_id VARCHAR, input_key VARCHAR, status VARCHAR, columns VARCHAR)"""

# Project permissions and visibility set over the API, which override the project's YAML
# file until that file's own section changes. `yaml_permissions` (JSON) and
# `yaml_is_public` contain the YAML's values at the time of the override. A NULL in
# `permissions` or `is_public` means that part follows the YAML.
PROJECT_ACCESS = """CREATE TABLE IF NOT EXISTS project_access (
    project_id VARCHAR, permissions VARCHAR, yaml_permissions VARCHAR, is_public BOOLEAN,
    yaml_is_public BOOLEAN, changed_by VARCHAR, changed_at TIMESTAMP)"""

# Tables that a client such as the Depictio CLI wrote elsewhere (a Delta table in S3) and
# reported with `POST /deltatables/upsert`: one row per report, the newest last. depictiod
# keeps serving its own table of the collection; these rows tell what the client wrote.
EXTERNAL_TABLES = """CREATE TABLE IF NOT EXISTS external_tables (
    data_collection_id VARCHAR, location VARCHAR, size_bytes BIGINT, version BIGINT,
    rows_total BIGINT, write_mode VARCHAR, document VARCHAR, recorded_by VARCHAR,
    recorded_at TIMESTAMP)"""

# Change events of the processes that share a DuckLake catalog, so each process can stream
# the others' events (catalog.relay). DuckLake's row ids grow with each commit, so a reader
# takes the rows after the last row id it saw. `origin` names the process that wrote a row.
CHANGE_EVENTS = """CREATE TABLE IF NOT EXISTS change_events (
    origin VARCHAR, type VARCHAR, project_id VARCHAR, data VARCHAR, published_at TIMESTAMP)"""

# One row, updated by every write transaction on a DuckLake catalog. DuckLake lets two
# transactions that only insert into a table commit side by side, so two processes that
# register the same new file would both add it; two that update this row conflict, and the
# second runs again on top of the first (catalog.lake.claim_table_writes).
TABLE_WRITES = (
    "CREATE TABLE IF NOT EXISTS table_writes (n BIGINT)",
    "INSERT INTO table_writes SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM table_writes)",
)

STATEMENTS = (
    "CREATE TABLE IF NOT EXISTS catalog_meta (key VARCHAR, value VARCHAR)",
    f"CREATE SCHEMA IF NOT EXISTS {DATA_SCHEMA}",
    """CREATE TABLE IF NOT EXISTS projects (
        id VARCHAR, name VARCHAR, source VARCHAR, yaml_config_path VARCHAR,
        is_public BOOLEAN, document VARCHAR,
        registration_time TIMESTAMP, last_modified TIMESTAMP, placed_by VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS workflows (
        id VARCHAR, project_id VARCHAR, name VARCHAR, workflow_tag VARCHAR,
        position INTEGER, document VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS data_collections (
        id VARCHAR, project_id VARCHAR, workflow_id VARCHAR, tag VARCHAR, type VARCHAR,
        metatype VARCHAR, position INTEGER, document VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS runs (
        id VARCHAR, workflow_id VARCHAR, run_tag VARCHAR, run_location VARCHAR,
        workflow_config_id VARCHAR, creation_time TIMESTAMP, last_modification_time TIMESTAMP,
        registration_time TIMESTAMP, run_hash VARCHAR, parameters VARCHAR, origin VARCHAR,
        document VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS files (
        id VARCHAR, data_collection_id VARCHAR, workflow_id VARCHAR, run_id VARCHAR,
        run_tag VARCHAR, file_location VARCHAR, filename VARCHAR, filesize BIGINT,
        mtime_ns BIGINT, creation_time TIMESTAMP, modification_time TIMESTAMP,
        content_hash VARCHAR, wildcards VARCHAR, status VARCHAR, error VARCHAR,
        error_line BIGINT, row_count BIGINT, registration_time TIMESTAMP,
        link_target VARCHAR, read_details VARCHAR, origin VARCHAR, document VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS aggregated_tables (
        data_collection_id VARCHAR, table_name VARCHAR, row_count BIGINT, column_count INTEGER,
        size_bytes BIGINT, aggregation_version INTEGER, aggregation_time TIMESTAMP,
        aggregation_hash VARCHAR, inputs_fingerprint VARCHAR, drift VARCHAR,
        settings_fingerprint VARCHAR)""",
    TABLE_FILES,
    """CREATE TABLE IF NOT EXISTS column_specs (
        data_collection_id VARCHAR, position INTEGER, name VARCHAR, duckdb_type VARCHAR,
        type VARCHAR, description VARCHAR, specs VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS users (
        id VARCHAR, email VARCHAR, password_hash VARCHAR, is_admin BOOLEAN, is_active BOOLEAN,
        registration_date TIMESTAMP, last_login TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS tokens (
        id VARCHAR, user_id VARCHAR, name VARCHAR, token_lifetime VARCHAR, jti VARCHAR,
        expire_datetime TIMESTAMP, created_at TIMESTAMP, revoked BOOLEAN,
        refresh_jti VARCHAR, refresh_expire_datetime TIMESTAMP, access_seconds BIGINT)""",
    """CREATE TABLE IF NOT EXISTS dashboards (
        id VARCHAR, project_id VARCHAR, title VARCHAR, document VARCHAR,
        last_saved_ts TIMESTAMP)""",
    """CREATE TABLE IF NOT EXISTS scan_reports (
        id VARCHAR, project_id VARCHAR, workflow_id VARCHAR, started_at TIMESTAMP,
        finished_at TIMESTAMP, runs INTEGER, files_total INTEGER, files_new INTEGER,
        files_changed INTEGER, files_removed INTEGER, files_failed INTEGER, details VARCHAR)""",
    PROJECT_ACCESS,
    EXTERNAL_TABLES,
    CHANGE_EVENTS,
    *TABLE_WRITES,
)

# Statements that take a catalog from the version of the key to the next one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # Version 2 stores the run's workflow parameters (JSON) found in its folder.
    1: ("ALTER TABLE runs ADD COLUMN parameters VARCHAR",),
    # Version 3 updates tables file by file, so it records what each table contains. It also
    # stores each file's symlink target and how its last aggregation read it (JSON).
    2: (
        "ALTER TABLE aggregated_tables ADD COLUMN IF NOT EXISTS settings_fingerprint VARCHAR",
        TABLE_FILES,
        "ALTER TABLE files ADD COLUMN IF NOT EXISTS link_target VARCHAR",
        "ALTER TABLE files ADD COLUMN IF NOT EXISTS read_details VARCHAR",
    ),
    # Version 4 gives each token a rotating refresh token and the lifetime of its access tokens.
    3: (
        "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS refresh_jti VARCHAR",
        "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS refresh_expire_datetime TIMESTAMP",
        "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS access_seconds BIGINT",
        # It also keeps the project permissions and visibility set over the API.
        PROJECT_ACCESS,
    ),
    # Version 5 records who registered each run and file: `scan` (found by depictiod) or
    # `client` (pushed over the API), with the client's own fields as JSON in `document`.
    # It also records the tables that clients wrote elsewhere.
    4: (
        "ALTER TABLE runs ADD COLUMN IF NOT EXISTS origin VARCHAR",
        "ALTER TABLE runs ADD COLUMN IF NOT EXISTS document VARCHAR",
        "UPDATE runs SET origin = 'scan' WHERE origin IS NULL",
        "ALTER TABLE files ADD COLUMN IF NOT EXISTS origin VARCHAR",
        "ALTER TABLE files ADD COLUMN IF NOT EXISTS document VARCHAR",
        "UPDATE files SET origin = 'scan' WHERE origin IS NULL",
        EXTERNAL_TABLES,
        # The user who last set the locations of a project sent over the API.
        "ALTER TABLE projects ADD COLUMN IF NOT EXISTS placed_by VARCHAR",
    ),
    # Version 6 shares change events between the processes of a DuckLake catalog, and
    # makes their table changes conflict with each other.
    5: (CHANGE_EVENTS, *TABLE_WRITES),
}
