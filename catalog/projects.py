"""Projects, workflows and data collections in the catalog."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from catalog import project_access
from catalog.collection_changes import renamed_collection, without_collection
from catalog.errors import ConflictError, NotFoundError
from catalog.join_plans import with_joined_collections
from catalog.joins import delete_status
from catalog.records import CollectionRecord, ProjectRecord, WorkflowRecord
from catalog.schema import DATA_SCHEMA
from catalog.store import Connection, Store
from config import DataCollection, Permissions, Project, Workflow

logger = logging.getLogger(__name__)

_PROJECT_COLUMNS = "id, name, source, document, registration_time, last_modified, placed_by"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class ProjectRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def sync_from_config(self, projects: list[Project]) -> None:
        """Store the projects of the config files and drop config projects no longer listed, except on a DuckLake catalog.

        Permissions and visibility set over the API replace the YAML's while the YAML's own
        values stay as they were when the change was made (see catalog.project_access).
        """
        configured = {project.id for project in projects}
        # Processes that share a DuckLake catalog each list only the projects they ingest, so
        # none of them removes the projects that it does not list.
        shared = self._store.lake

        def work(connection: Connection) -> None:
            stored = connection.execute("SELECT id FROM projects WHERE source = 'config'").fetchall()
            for (project_id,) in stored:
                if project_id not in configured and not shared:
                    logger.info("removing project %s: its file is no longer listed in the settings", project_id)
                    _delete_project(connection, project_id)
            for project in projects:
                _upsert_project(connection, project_access.apply_overrides(connection, project), source="config")

        self._store.write(work)

    def create(self, project: Project, placed_by: str) -> ProjectRecord:
        """Store a project sent over the API; raise ConflictError when its id, name or a child id is taken."""
        assert project.id is not None

        def work(connection: Connection) -> None:
            if connection.execute("SELECT 1 FROM projects WHERE id = ?", [project.id]).fetchone():
                raise ConflictError(
                    f"a project with id {project.id!r} already exists; update it with PUT /projects/update"
                )
            _check_unique(connection, project)
            _upsert_project(connection, project, source="api", placed_by=placed_by)

        self._store.write(work)
        return self._changed(project.id)

    def update(self, project: Project, placed_by: str) -> ProjectRecord:
        """Replace a project sent over the API, keeping its registration time.

        Raise NotFoundError when it does not exist and ConflictError when it comes from a
        project file of the settings, or when its new name or a new child id is taken.
        Workflows and collections it no longer lists are removed with their runs, files
        and tables.
        """
        assert project.id is not None

        def work(connection: Connection) -> None:
            row = connection.execute(
                "SELECT source, yaml_config_path FROM projects WHERE id = ?", [project.id]
            ).fetchone()
            if row is None:
                raise NotFoundError("project", str(project.id))
            if row[0] != "api":
                raise ConflictError(
                    f"project {project.id!r} comes from the project file {row[1]!r} in the service's settings; "
                    "change that file instead, and the service reloads it at its next start"
                )
            _check_unique(connection, project)
            _upsert_project(connection, project, source="api", placed_by=placed_by)

        self._store.write(work)
        return self._changed(project.id)

    def delete(self, project_id: str) -> None:
        """Delete a project sent over the API with its runs, files, tables and dashboards.

        Raise NotFoundError when it does not exist and ConflictError when it comes from a
        project file, which would bring it back at the next start.
        """

        def work(connection: Connection) -> None:
            row = connection.execute(
                "SELECT source, yaml_config_path FROM projects WHERE id = ?", [project_id]
            ).fetchone()
            if row is None:
                raise NotFoundError("project", project_id)
            if row[0] != "api":
                raise ConflictError(
                    f"project {project_id!r} comes from the project file {row[1]!r} in the service's settings; "
                    "remove it from the `projects` setting instead"
                )
            _delete_project(connection, project_id)

        self._store.write(work)

    def rename_collection(self, collection_id: str, new_tag: str) -> ProjectRecord:
        """Set the tag of a collection of a project sent over the API, and the joins and links that name it.

        Raise NotFoundError when the collection does not exist, and ConflictError when its
        project comes from a project file or another collection of its workflow has the tag.
        """
        return self._change_collection(
            collection_id, lambda project: renamed_collection(project, collection_id, new_tag)
        )

    def remove_collection(self, collection_id: str) -> ProjectRecord:
        """Remove a collection from a project sent over the API, with its files, table and links.

        Raise NotFoundError when the collection does not exist, and ConflictError when its
        project comes from a project file or a join uses the collection.
        """
        return self._change_collection(collection_id, lambda project: without_collection(project, collection_id))

    def _change_collection(self, collection_id: str, change: Callable[[Project], Project]) -> ProjectRecord:
        """Apply `change` to the project of a collection in one transaction, so no concurrent update is lost."""

        def work(connection: Connection) -> str:
            row = connection.execute(
                "SELECT p.id, p.source, p.yaml_config_path, p.document FROM data_collections AS c "
                "JOIN projects AS p ON p.id = c.project_id WHERE c.id = ?",
                [collection_id],
            ).fetchone()
            if row is None:
                raise NotFoundError("data collection", collection_id)
            project_id, source, yaml_path, document = row
            if source != "api":
                raise ConflictError(
                    f"data collection {collection_id!r} belongs to a project from the project file {yaml_path!r} "
                    "in the service's settings; change that file instead"
                )
            project = change(msgspec.json.decode(document, type=Project))
            _upsert_project(connection, project, source="api")
            return str(project_id)

        return self._changed(self._store.write(work))

    def list_sent(self) -> list[ProjectRecord]:
        """Return the projects sent over the API, for the ingestor."""
        rows = self._store.query(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE source = 'api' ORDER BY name")
        return [_project_record(row) for row in rows]

    def set_permissions(self, project_id: str, permissions: Permissions, changed_by: str) -> ProjectRecord:
        """Replace a project's permissions; raise NotFoundError when the project does not exist."""
        self._store.write(lambda c: project_access.set_permissions(c, project_id, permissions, changed_by))
        return self._changed(project_id)

    def set_public(self, project_id: str, is_public: bool, changed_by: str) -> ProjectRecord:
        """Make a project public or private; raise NotFoundError when the project does not exist."""
        self._store.write(lambda c: project_access.set_public(c, project_id, is_public, changed_by))
        return self._changed(project_id)

    def _changed(self, project_id: str) -> ProjectRecord:
        record = self.get(project_id)
        if record is None:
            # Removed by a concurrent sync between the write and this read.
            raise NotFoundError("project", project_id)
        return record

    def list(self) -> list[ProjectRecord]:
        rows = self._store.query(f"SELECT {_PROJECT_COLUMNS} FROM projects ORDER BY name")
        return [_project_record(row) for row in rows]

    def get(self, project_id: str) -> ProjectRecord | None:
        row = self._store.query_one(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE id = ?", [project_id])
        return _project_record(row) if row else None

    def get_by_name(self, name: str) -> ProjectRecord | None:
        row = self._store.query_one(f"SELECT {_PROJECT_COLUMNS} FROM projects WHERE name = ?", [name])
        return _project_record(row) if row else None

    def collection_ids(self) -> set[str]:
        """Return the id of every data collection of every project."""
        return {str(row[0]) for row in self._store.query("SELECT id FROM data_collections")}

    def workflow(self, workflow_id: str) -> WorkflowRecord | None:
        row = self._store.query_one("SELECT id, project_id, document FROM workflows WHERE id = ?", [workflow_id])
        if row is None:
            return None
        return WorkflowRecord(id=row[0], project_id=row[1], workflow=msgspec.json.decode(row[2], type=Workflow))

    def collection(self, collection_id: str) -> CollectionRecord | None:
        row = self._store.query_one(
            "SELECT id, project_id, workflow_id, document FROM data_collections WHERE id = ?",
            [collection_id],
        )
        if row is None:
            return None
        collection = msgspec.json.decode(row[3], type=DataCollection)
        return CollectionRecord(id=row[0], project_id=row[1], workflow_id=row[2], collection=collection)


def _check_unique(connection: Connection, project: Project) -> None:
    """Raise ConflictError when another project has the project's name or one of its workflow or collection ids.

    The collections of the project's persisted joins count too.
    """
    project = with_joined_collections(project)
    row = connection.execute(
        "SELECT id FROM projects WHERE name = ? AND id <> ?", [project.name, project.id]
    ).fetchone()
    if row is not None:
        raise ConflictError(f"name: another project is already named {project.name!r}; choose another name")
    for index, workflow in enumerate(project.workflows):
        row = connection.execute(
            "SELECT project_id FROM workflows WHERE id = ? AND project_id <> ?", [workflow.id, project.id]
        ).fetchone()
        if row is not None:
            raise ConflictError(
                f"workflows[{index}].id: workflow id {workflow.id!r} is used by another project; use a new id"
            )
        for position, collection in enumerate(workflow.data_collections):
            _check_collection_id(connection, project, collection, f"workflows[{index}].data_collections[{position}]")
    for position, collection in enumerate(project.data_collections):
        _check_collection_id(connection, project, collection, f"data_collections[{position}]")


def _check_collection_id(connection: Connection, project: Project, collection: DataCollection, key: str) -> None:
    row = connection.execute(
        "SELECT project_id FROM data_collections WHERE id = ? AND project_id <> ?", [collection.id, project.id]
    ).fetchone()
    if row is not None:
        raise ConflictError(f"{key}.id: data collection id {collection.id!r} is used by another project; use a new id")


def _project_record(row: tuple[object, ...]) -> ProjectRecord:
    project_id, name, source, document, registered, modified, placed_by = row
    project = msgspec.json.decode(str(document), type=Project)
    return ProjectRecord(
        id=str(project_id),
        name=str(name),
        source=str(source),
        project=project,
        registration_time=registered,  # type: ignore[arg-type]
        last_modified=modified,  # type: ignore[arg-type]
        placed_by=None if placed_by is None else str(placed_by),
    )


def _upsert_project(connection: Connection, project: Project, source: str, placed_by: str | None = None) -> None:
    """Store a project with a data collection for each persisted join; `placed_by` None keeps who set its locations."""
    assert project.id is not None, "config.load_project assigns every project an id"
    project = with_joined_collections(project)
    now = _now()
    previous = connection.execute(
        "SELECT registration_time, document, placed_by, last_modified FROM projects WHERE id = ?", [project.id]
    ).fetchone()
    document = msgspec.json.encode(project).decode()
    registered = previous[0] if previous else now
    modified = now if previous is None or previous[1] != document else None
    placer = placed_by
    if placer is None and previous is not None:
        placer = previous[2]

    if previous is not None and modified is None and placer == previous[2]:
        return  # Unchanged: keep last_modified as it was.

    connection.execute("DELETE FROM projects WHERE id = ?", [project.id])
    connection.execute(
        "INSERT INTO projects (id, name, source, yaml_config_path, is_public, document, registration_time, "
        "last_modified, placed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            project.id,
            project.name,
            source,
            project.yaml_config_path,
            project.is_public,
            document,
            registered,
            modified if modified is not None or previous is None else previous[3],
            placer,
        ],
    )
    _replace_children(connection, project)


def _replace_children(connection: Connection, project: Project) -> None:
    kept_workflows = {workflow.id for workflow in project.workflows}
    kept_collections = {dc.id for workflow in project.workflows for dc in workflow.data_collections}
    kept_collections |= {dc.id for dc in project.data_collections}

    # Workflows and collections removed from the YAML take their runs, files and tables along.
    for (workflow_id,) in connection.execute("SELECT id FROM workflows WHERE project_id = ?", [project.id]).fetchall():
        if workflow_id not in kept_workflows:
            _delete_workflow_data(connection, workflow_id)
    for (collection_id,) in connection.execute(
        "SELECT id FROM data_collections WHERE project_id = ?", [project.id]
    ).fetchall():
        if collection_id not in kept_collections:
            _delete_collection_data(connection, collection_id)

    connection.execute("DELETE FROM workflows WHERE project_id = ?", [project.id])
    connection.execute("DELETE FROM data_collections WHERE project_id = ?", [project.id])
    for position, workflow in enumerate(project.workflows):
        _insert_workflow(connection, project, workflow, position)
    for position, collection in enumerate(project.data_collections):
        _insert_collection(connection, project.id, None, collection, position)


def _insert_workflow(connection: Connection, project: Project, workflow: Workflow, position: int) -> None:
    connection.execute(
        "INSERT INTO workflows VALUES (?, ?, ?, ?, ?, ?)",
        [
            workflow.id,
            project.id,
            workflow.name,
            workflow.workflow_tag,
            position,
            msgspec.json.encode(workflow).decode(),
        ],
    )
    for index, collection in enumerate(workflow.data_collections):
        _insert_collection(connection, str(project.id), workflow.id, collection, index)


def _insert_collection(
    connection: Connection, project_id: str | None, workflow_id: str | None, collection: DataCollection, position: int
) -> None:
    connection.execute(
        "INSERT INTO data_collections VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            collection.id,
            project_id,
            workflow_id,
            collection.data_collection_tag,
            collection.config.type,
            collection.config.metatype,
            position,
            msgspec.json.encode(collection).decode(),
        ],
    )


def _delete_project(connection: Connection, project_id: str) -> None:
    for (workflow_id,) in connection.execute("SELECT id FROM workflows WHERE project_id = ?", [project_id]).fetchall():
        _delete_workflow_data(connection, workflow_id)
    for (collection_id,) in connection.execute(
        "SELECT id FROM data_collections WHERE project_id = ?", [project_id]
    ).fetchall():
        _delete_collection_data(connection, collection_id)
    connection.execute("DELETE FROM workflows WHERE project_id = ?", [project_id])
    connection.execute("DELETE FROM data_collections WHERE project_id = ?", [project_id])
    connection.execute("DELETE FROM dashboards WHERE project_id = ?", [project_id])
    connection.execute("DELETE FROM scan_reports WHERE project_id = ?", [project_id])
    project_access.delete_overrides(connection, project_id)
    connection.execute("DELETE FROM projects WHERE id = ?", [project_id])


def _delete_workflow_data(connection: Connection, workflow_id: str) -> None:
    connection.execute("DELETE FROM runs WHERE workflow_id = ?", [workflow_id])
    connection.execute("DELETE FROM files WHERE workflow_id = ?", [workflow_id])


def _delete_collection_data(connection: Connection, collection_id: str) -> None:
    connection.execute("DELETE FROM files WHERE data_collection_id = ?", [collection_id])
    connection.execute("DELETE FROM aggregated_tables WHERE data_collection_id = ?", [collection_id])
    connection.execute("DELETE FROM column_specs WHERE data_collection_id = ?", [collection_id])
    connection.execute("DELETE FROM table_files WHERE data_collection_id = ?", [collection_id])
    connection.execute("DELETE FROM external_tables WHERE data_collection_id = ?", [collection_id])
    delete_status(connection, collection_id)
    connection.execute(f'DROP TABLE IF EXISTS {DATA_SCHEMA}."dc_{collection_id}"')
