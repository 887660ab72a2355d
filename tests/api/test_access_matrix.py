"""Every route of the app × every kind of caller, with the status each must get.

The routes come from the app's own route table, so a new route fails
`test_every_route_has_a_case` until it gets a row in CASES with its expected rule. Each
row runs for nine callers (COLUMNS). On a private project: an administrator, the owner,
an editor, a viewer, a signed-in stranger and an anonymous caller. On a public project:
a stranger and an anonymous caller. Last, an administrator who names an object that does
not exist. The whole matrix runs with `auth.public_read` off and on. Every response body is checked for
password hashes and other users' token secrets.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml
from litestar import Litestar
from litestar.handlers.base import BaseRouteHandler
from litestar.testing import TestClient

from api import create_app
from api.access import route_rule
from catalog import DashboardChanges, DashboardRecord, user_id_for, utc_now
from config import Settings, load_projects, load_settings
from tests.api.conftest import API, add_user, login
from tests.examples import copy_bundled_examples, write_settings

PASSWORD = "matrix-test-password"
OWNER = "owner@example.org"
EDITOR = "editor@example.org"
VIEWER = "viewer@example.org"
STRANGER = "stranger@example.org"
# Signs in through the login row; not one of the callers, so its tokens are not "another user's".
LOGIN_USER = "login@example.org"

PRIVATE_PROJECT = {
    "project_id": "6a0001000000000000000001",
    "project_name": "Palmer penguins (bundled example)",
    "workflow_id": "6a0001000000000000000002",
    "workflow_name": "penguin_species_analysis",
    "engine": "python",
    "data_collection_id": "6a0001000000000000000003",
    "workflow_tag": "python/penguin_species_analysis",
    "data_collection_tag": "physical_features",
    "is_public": "false",
    # For routes that take a flag in their path, such as turn_sysadmin.
    "is_admin": "false",
}
PUBLIC_PROJECT = {
    "project_id": "6a0002000000000000000001",
    "project_name": "Iris (bundled example)",
    "workflow_id": "6a0002000000000000000002",
    "workflow_name": "iris_workflow",
    "engine": "python",
    "data_collection_id": "6a0002000000000000000003",
    "workflow_tag": "python/iris_workflow",
    "data_collection_tag": "iris_table",
    "is_public": "true",
    "is_admin": "false",
}
MISSING_OBJECT = {
    "project_id": "f" * 24,
    "project_name": "no such project",
    "workflow_id": "f" * 24,
    "workflow_name": "no such workflow",
    "engine": "python",
    "data_collection_id": "f" * 24,
    "run_id": "f" * 24,
    "file_id": "f" * 24,
    "dashboard_id": "f" * 24,
    "ingestion_id": "no-such-ingestion",
    "is_public": "false",
    "is_admin": "false",
}
# The permissions in the YAML files below, restated by the permissions row so that
# running it changes nothing.
PERMISSIONS = {
    "private": {"owners": [OWNER], "editors": [EDITOR], "viewers": [VIEWER]},
    "public": {"owners": [OWNER], "editors": [], "viewers": []},
    "missing": {"owners": [OWNER], "editors": [], "viewers": []},
}


CLI_CONFIG = {
    "api_base_url": "http://127.0.0.1:8058",
    "user": {
        "email": "nobody@example.org",
        "token": {
            "user_id": "f" * 24,
            "access_token": "not-a-token",
            "refresh_token": "not-a-token",
            "expire_datetime": "2030-01-01 00:00:00",
            "refresh_expire_datetime": "2030-01-01 00:00:00",
        },
    },
    "s3_storage": {},
}


@dataclass(frozen=True)
class Case:
    """How to call one route, and the rule it must declare."""

    rule: str
    query: dict[str, str] = field(default_factory=dict)
    body: Callable[[dict[str, str], str], dict[str, Any]] | None = None
    form: dict[str, str] | None = None
    # A text/plain body, for routes that read YAML.
    text: Callable[[dict[str, str], str], str] | None = None
    # Multipart files, as (field, (file name, content)).
    files: list[tuple[str, tuple[str, bytes]]] | None = None
    # False for routes that name no object (lists, the caller's own account, the service).
    names_object: bool = True
    ok: int = 200
    # For routes that delete or consume their object: makes a fresh one in the target
    # project before each call and returns its ids, which override the target's.
    prepare: Callable[[World, str], dict[str, str]] | None = None
    # The status for an administrator naming a missing object, when it differs from 404:
    # routes that take a list of ids count unknown ones instead of failing.
    missing_status: int | None = None
    # The row of EXPECTED to use when it is not the rule's own row.
    row: str | None = None


def _permissions_body(target: dict[str, str], target_name: str) -> dict[str, Any]:
    return {"project_id": target["project_id"], "permissions": PERMISSIONS[target_name]}


# Projects that the matrix sends over the API place their workflow here; it need not exist.
SENT_LOCATION = "/nonexistent-depictiod-matrix/data"
_sent_count = 0


def _next_sent_ids() -> dict[str, str]:
    global _sent_count
    _sent_count += 1
    prefix = f"5e{_sent_count:016x}"
    return {
        "project_id": f"{prefix}000001",
        "project_name": f"sent project {_sent_count}",
        "workflow_id": f"{prefix}000002",
        "data_collection_id": f"{prefix}000003",
        "run_id": f"{prefix}000004",
        "file_id": f"{prefix}000005",
    }


def _sent_project(ids: dict[str, str], target_name: str) -> dict[str, Any]:
    """A whole Depictio project document, with the permissions and visibility of the target project."""
    return {
        "id": ids["project_id"],
        "name": ids["project_name"],
        "is_public": target_name == "public",
        "permissions": PERMISSIONS[target_name],
        "workflows": [
            {
                "id": ids["workflow_id"],
                "name": "matrix_workflow",
                "engine": {"name": "python"},
                "data_location": {"structure": "sequencing-runs", "runs_regex": "run_.*", "locations": [SENT_LOCATION]},
                "data_collections": [
                    {
                        "id": ids["data_collection_id"],
                        "data_collection_tag": "measures",
                        "config": {
                            "type": "table",
                            "dc_specific_properties": {"format": "csv"},
                            "scan": {
                                "mode": "recursive",
                                "scan_parameters": {"regex_config": {"pattern": "measures.csv"}},
                            },
                        },
                    }
                ],
            }
        ],
    }


def _new_project_body(target: dict[str, str], target_name: str) -> dict[str, Any]:
    return _sent_project(_next_sent_ids(), "private" if target_name == "missing" else target_name)


def _sent_body(target: dict[str, str], target_name: str) -> dict[str, Any]:
    ids = {key: target[key] for key in ("project_id", "project_name", "workflow_id", "data_collection_id")}
    return _sent_project({**ids, "run_id": "", "file_id": ""}, target_name)


def _run_body(target: dict[str, str], target_name: str) -> dict[str, Any]:
    run = {
        "id": target.get("run_id") or "f" * 24,
        "workflow_id": target["workflow_id"],
        "run_tag": "run_1",
        "run_location": f"{SENT_LOCATION}/run_1",
        "creation_time": "2026-01-31 14:05:00",
        "last_modification_time": "2026-01-31 14:05:00",
        "workflow_config_id": "f" * 24,
    }
    return {"runs": [run], "update": False}


def _file_body(target: dict[str, str], target_name: str) -> dict[str, Any]:
    file = {
        "id": target.get("file_id") or "f" * 24,
        "file_location": f"{SENT_LOCATION}/run_1/measures.csv",
        "filename": "measures.csv",
        "creation_time": "2026-01-31 14:05:00",
        "modification_time": "2026-01-31 14:05:00",
        "data_collection_id": target["data_collection_id"],
        "run_id": target.get("run_id") or "f" * 24,
        "run_tag": "run_1",
        "file_hash": "0" * 64,
        "filesize": 10,
    }
    return {"files": [file], "update": False}


def _make_sent_project(world: World, target_name: str) -> dict[str, str]:
    """Send a new project with the target's permissions, with one run and one file, as the administrator."""
    ids = _next_sent_ids()
    admin = world.headers["admin"]
    for path, body in (
        ("projects/create", _sent_project(ids, target_name)),
        ("runs/upsert_batch", _run_body(ids, target_name)),
        ("files/upsert_batch", _file_body(ids, target_name)),
    ):
        response = world.client.post(f"{API}/{path}", json=body, headers=admin)
        assert response.status_code == 200, f"{path}: {response.text}"
    return ids


def _dashboard_content(target: dict[str, str]) -> dict[str, Any]:
    component = {
        "tag": "records",
        "component_type": "table",
        "workflow_tag": target.get("workflow_tag", "python/none"),
        "data_collection_tag": target.get("data_collection_tag", "none"),
    }
    return {"subtitle": "made by the access matrix", "components": [component]}


def _dashboard_body(target: dict[str, str], target_name: str) -> dict[str, Any]:
    return {"title": "Matrix dashboard", "project_id": target["project_id"], **_dashboard_content(target)}


def _dashboard_yaml(target: dict[str, str], target_name: str) -> str:
    return yaml.safe_dump({"title": "Imported by the matrix", **_dashboard_content(target)})


def _dashboard_export(target: dict[str, str], target_name: str) -> dict[str, Any]:
    return {
        "_depictio_export_version": "1.0",
        "_export_source": {"dashboard_id": "f" * 24, "project_tag": target["project_name"]},
        "dashboard": {"title": "Imported from JSON by the matrix", **_dashboard_content(target)},
    }


def _fresh_dashboard(world: World, target_name: str) -> dict[str, str]:
    return {"dashboard_id": add_dashboard(world.client, world.targets[target_name]["project_id"])}


def _start_ingestion(world: World, target_name: str) -> dict[str, str]:
    """Start a client ingestion as the owner of the target project, for the step and finish rows."""
    response = world.client.post(
        f"{API}/monitoring/ingestion/start",
        json={"command": "ingest", "project_id": world.targets[target_name]["project_id"]},
        headers=world.headers["owner"],
    )
    assert response.status_code == 200, response.text
    return {"ingestion_id": response.json()["run_id"]}


def _rebuild_table(world: World, target_name: str) -> dict[str, str]:
    """Rebuild the target collection's table, which the previous call may have deleted."""
    world.client.app.state.ingestor.rescan_workflow(world.targets[target_name]["workflow_id"], trigger="api")
    return {}


STEP = {"step": {"name": "scan", "status": "running"}, "current_step": "scan"}
FINISH = {"status": "success", "steps": [{"name": "scan", "status": "success"}]}

# One small CSV file for the upload routes.
UPLOAD = [("files", ("measures.csv", b"id,label\n1,a\n"))]
DOCS_PAGE = Case("public", names_object=False)
CASES: dict[tuple[str, str], Case] = {
    ("GET", "/health"): Case("public", names_object=False),
    ("GET", f"{API}/utils/status"): Case("public", names_object=False),
    ("POST", f"{API}/auth/login"): Case(
        "public", form={"username": LOGIN_USER, "password": PASSWORD}, names_object=False
    ),
    ("GET", f"{API}/auth/me"): Case("signed_in", names_object=False),
    # Registration is off in this world, so everyone gets the same refusal.
    ("POST", f"{API}/auth/register"): Case(
        "public", body=lambda *_: {"email": "new@example.org", "password": PASSWORD}, names_object=False, ok=403
    ),
    ("POST", f"{API}/auth/refresh"): Case(
        "public", body=lambda *_: {"refresh_token": "not-a-token"}, names_object=False, ok=401
    ),
    ("POST", f"{API}/auth/check_token_validity"): Case("public", names_object=False),
    # A wrong old password: signed-in callers reach the check, which changes nothing.
    ("POST", f"{API}/auth/edit_password"): Case(
        "signed_in",
        body=lambda *_: {"old_password": "wrong password", "new_password": "another password"},
        names_object=False,
        ok=400,
    ),
    ("GET", f"{API}/auth/list"): Case("admin", names_object=False),
    # No such user: administrators get past the rule and find nothing to change.
    ("DELETE", f"{API}/auth/delete/{{user_id:str}}"): Case("admin", names_object=False, ok=404),
    ("POST", f"{API}/auth/turn_sysadmin/{{user_id:str}}/{{is_admin:str}}"): Case("admin", names_object=False, ok=404),
    # Each caller names its token after the project it targets, so no name is used twice.
    ("POST", f"{API}/auth/me/tokens"): Case(
        "signed_in", body=lambda _target, name: {"name": f"matrix-{name}"}, names_object=False
    ),
    ("GET", f"{API}/auth/list_tokens"): Case("signed_in", names_object=False),
    ("DELETE", f"{API}/auth/me/tokens/{{token_id:str}}"): Case("signed_in", names_object=False, ok=404),
    ("POST", f"{API}/auth/generate_agent_config"): Case("signed_in", names_object=False),
    # A config whose token is not the caller's: validation returns 200 with success false.
    ("POST", f"{API}/cli/validate_cli_config"): Case("signed_in", body=lambda *_: CLI_CONFIG, names_object=False),
    ("GET", f"{API}/projects/get/all"): Case("read", names_object=False),
    ("GET", f"{API}/projects/get/from_id"): Case("read", query={"project_id": "{project_id}"}),
    ("GET", f"{API}/projects/get/from_name/{{project_name:path}}"): Case("read"),
    ("GET", f"{API}/projects/ingestion-report/{{project_id:str}}"): Case("read"),
    ("POST", f"{API}/projects/update_project_permissions"): Case("manage", body=_permissions_body),
    ("POST", f"{API}/projects/create"): Case("signed_in", body=_new_project_body, names_object=False),
    ("PUT", f"{API}/projects/update"): Case("manage", body=_sent_body, prepare=_make_sent_project),
    ("DELETE", f"{API}/projects/delete"): Case(
        "manage", query={"project_id": "{project_id}"}, prepare=_make_sent_project
    ),
    ("POST", f"{API}/runs/upsert_batch"): Case("write", body=_run_body, prepare=_make_sent_project),
    ("DELETE", f"{API}/runs/delete/{{run_id:str}}"): Case("write", prepare=_make_sent_project),
    ("POST", f"{API}/runs/delete_batch"): Case(
        "write", body=lambda target, _: {"run_ids": [target["run_id"]]}, prepare=_make_sent_project, missing_status=200
    ),
    ("POST", f"{API}/files/upsert_batch"): Case("write", body=_file_body, prepare=_make_sent_project),
    ("DELETE", f"{API}/files/delete/{{file_id:str}}"): Case("write", prepare=_make_sent_project),
    ("POST", f"{API}/files/delete_batch"): Case(
        "write",
        body=lambda target, _: {"file_ids": [target.get("file_id", "f" * 24)]},
        prepare=_make_sent_project,
        missing_status=200,
    ),
    ("POST", f"{API}/projects/toggle_public_private/{{project_id:str}}"): Case(
        "manage", query={"is_public": "{is_public}"}
    ),
    ("POST", f"{API}/projects/{{project_id:str}}/scan"): Case("write"),
    ("GET", f"{API}/scans"): Case("read", query={"project_id": "{project_id}"}),
    ("GET", f"{API}/workflows/get/from_id"): Case("read", query={"workflow_id": "{workflow_id}"}),
    ("GET", f"{API}/workflows/get_all_workflows"): Case("read", names_object=False),
    ("GET", f"{API}/workflows/get/from_args"): Case("read", query={"name": "{workflow_name}", "engine": "{engine}"}),
    ("GET", f"{API}/workflows/get_tag_from_id/{{workflow_id:str}}"): Case("read"),
    ("GET", f"{API}/datacollections/get_tag_from_id/{{data_collection_id:str}}"): Case("read"),
    # A first ingest names a project that does not exist yet: any signed-in user may start one.
    ("POST", f"{API}/monitoring/ingestion/start"): Case(
        "signed_in", body=lambda _target, name: {"command": "ingest", "project_name": f"new {name}"}, names_object=False
    ),
    ("POST", f"{API}/monitoring/ingestion/{{ingestion_id:str}}/step"): Case(
        "signed_in", body=lambda *_: STEP, prepare=_start_ingestion, row="starter"
    ),
    ("POST", f"{API}/monitoring/ingestion/{{ingestion_id:str}}/finish"): Case(
        "signed_in", body=lambda *_: FINISH, prepare=_start_ingestion, row="starter"
    ),
    ("POST", f"{API}/deltatables/upsert"): Case(
        "write",
        body=lambda target, _name: {
            "data_collection_id": target["data_collection_id"],
            "delta_table_location": "s3://matrix-bucket/table",
            "update": True,
        },
    ),
    ("DELETE", f"{API}/deltatables/delete/{{data_collection_id:str}}"): Case("write", prepare=_rebuild_table),
    ("GET", f"{API}/runs/list/{{workflow_id:str}}"): Case("read"),
    ("GET", f"{API}/runs/get/{{run_id:str}}"): Case("read"),
    ("GET", f"{API}/files/list/{{data_collection_id:str}}"): Case("read"),
    ("GET", f"{API}/datacollections/specs/{{data_collection_id:str}}"): Case("read"),
    ("POST", f"{API}/datacollections/{{data_collection_id:str}}/append"): Case(
        "write", files=UPLOAD, prepare=_make_sent_project
    ),
    ("POST", f"{API}/datacollections/{{data_collection_id:str}}/replace"): Case(
        "write", files=UPLOAD, prepare=_make_sent_project
    ),
    ("DELETE", f"{API}/datacollections/{{data_collection_id:str}}/data"): Case("write", prepare=_make_sent_project),
    ("PUT", f"{API}/datacollections/{{data_collection_id:str}}/name"): Case(
        "write", body=lambda *_: {"new_name": "renamed_measures"}, prepare=_make_sent_project
    ),
    ("DELETE", f"{API}/datacollections/{{data_collection_id:str}}"): Case("manage", prepare=_make_sent_project),
    ("GET", f"{API}/deltatables/get/{{data_collection_id:str}}"): Case("read"),
    ("GET", f"{API}/deltatables/specs/{{data_collection_id:str}}"): Case("read"),
    ("GET", f"{API}/deltatables/shape/{{data_collection_id:str}}"): Case("read"),
    ("GET", f"{API}/deltatables/preview/{{data_collection_id:str}}"): Case("read"),
    ("GET", f"{API}/datacollections/{{data_collection_id:str}}/rows"): Case("read"),
    ("GET", f"{API}/deltatables/unique_values/{{data_collection_id:str}}"): Case(
        "read", query={"column": "depictio_run_id"}
    ),
    ("GET", f"{API}/dashboards/list"): Case("read", names_object=False),
    ("GET", f"{API}/dashboards/get/{{dashboard_id:str}}"): Case("read"),
    ("POST", f"{API}/dashboards/save/{{dashboard_id:str}}"): Case("write", body=_dashboard_body),
    ("DELETE", f"{API}/dashboards/delete/{{dashboard_id:str}}"): Case("write", prepare=_fresh_dashboard),
    # Each call restates the project's visibility, so the other rows see the project unchanged.
    ("POST", f"{API}/dashboards/toggle_public_status/{{dashboard_id:str}}"): Case(
        "manage", body=lambda target, _: {"is_public": target["is_public"] == "true"}, prepare=_fresh_dashboard
    ),
    ("POST", f"{API}/dashboards/import/yaml"): Case(
        "write", query={"project_id": "{project_id}", "existing": "replace"}, text=_dashboard_yaml
    ),
    ("GET", f"{API}/dashboards/{{dashboard_id:str}}/yaml"): Case("read"),
    ("GET", f"{API}/dashboards/{{dashboard_id:str}}/json"): Case("read"),
    ("POST", f"{API}/dashboards/import/json"): Case(
        "write", query={"project_id": "{project_id}"}, body=_dashboard_export
    ),
    ("GET", "/docs"): DOCS_PAGE,
    ("GET", "/docs/openapi.json"): DOCS_PAGE,
    ("GET", "/docs/scalar"): DOCS_PAGE,
    ("GET", "/docs/swagger"): DOCS_PAGE,
    ("GET", "/docs/oauth2-redirect.html"): DOCS_PAGE,
    # Litestar's page for unknown documentation paths.
    ("GET", "/docs/{path:str}"): Case("public", names_object=False, ok=404),
    # SQL queries: any signed-in user; the tables a query may read are checked inside.
    ("POST", f"{API}/sql"): Case("signed_in", body=lambda *_: {"query": "SELECT 42 AS answer"}, names_object=False),
    # Events: max_seconds=0 ends the stream after its first bytes, so the request returns.
    ("GET", f"{API}/events"): Case("signed_in", query={"max_seconds": "0"}, names_object=False),
    # Export: a collection's rows as a CSV, TSV, Parquet or Arrow download.
    ("GET", f"{API}/datacollections/{{data_collection_id:str}}/export"): Case("read", query={"format": "csv"}),
    # Backup and restore: each call that passes the rule writes a backup into a new folder.
    ("POST", f"{API}/utils/backup"): Case("admin", body=lambda *_: {"to": _new_backup_folder()}, names_object=False),
    # Metrics and health: the probes are public; /metrics needs an administrator unless
    # server.metrics_public is true (tests/api/test_metrics.py covers that setting).
    ("GET", "/health/live"): Case("public", names_object=False),
    ("GET", "/health/ready"): Case("public", names_object=False),
    ("GET", "/metrics"): Case("admin", names_object=False),
    # Artifacts: the bytes of a registered file, and a run's files as one zip archive.
    ("GET", f"{API}/files/{{file_id:str}}/content"): Case("read"),
    ("GET", f"{API}/runs/{{run_id:str}}/archive"): Case("read"),
    # The web page: the same rules as the API routes that serve the same data. Sign-in and
    # sign-out redirect, and the client follows to the page where they lead.
    ("GET", "/"): Case("read", names_object=False),
    ("GET", "/projects/{project_id:str}"): Case("read"),
    ("GET", "/runs/{run_id:str}"): Case("read"),
    ("GET", "/collections/{data_collection_id:str}"): Case("read"),
    ("GET", "/scans"): Case("read", names_object=False),
    ("GET", "/login"): Case("public", names_object=False),
    ("POST", "/login"): Case("public", form={"email": LOGIN_USER, "password": PASSWORD}, names_object=False),
    ("POST", "/session/logout"): Case("public", names_object=False),
    ("GET", "/session/refresh"): Case("public", names_object=False),
    ("GET", "/static/{version:str}/{name:str}"): Case(
        "public", prepare=lambda *_: {"version": "1", "name": "depictiod.css"}, missing_status=404
    ),
}
# Backups must be outside the catalog's folder, so they go to a folder of their own (see _backup_root).
_backup_folders: list[Path] = []


@pytest.fixture(scope="module", autouse=True)
def _backup_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    _backup_folders[:] = [tmp_path_factory.mktemp("matrix-backups")]


def _new_backup_folder() -> str:
    root = _backup_folders[0]
    return str(root / f"backup-{len(list(root.iterdir()))}")


# Litestar responds to OPTIONS on every path with the allowed methods.
OPTIONS_CASE = Case("public", names_object=False, ok=204)

# Columns of the matrix: (caller, project whose objects the request names).
COLUMNS = {
    "admin": ("admin", "private"),
    "owner": ("owner", "private"),
    "editor": ("editor", "private"),
    "viewer": ("viewer", "private"),
    "stranger": ("stranger", "private"),
    "anonymous": ("anonymous", "private"),
    "stranger on public": ("stranger", "public"),
    "anonymous on public": ("anonymous", "public"),
    "admin on missing": ("admin", "missing"),
}
OK = 0
PUBLIC_READ = -1
# Expected status by rule and column; OK is the route's success status, PUBLIC_READ is OK
# when auth.public_read is on and 401 when it is off.
EXPECTED: dict[str, tuple[int, ...]] = {
    #          admin owner editor viewer stranger anon stranger-pub anon-pub admin-missing
    "public": (OK, OK, OK, OK, OK, OK, OK, OK, OK),
    "signed_in": (OK, OK, OK, OK, OK, 401, OK, 401, OK),
    "admin": (OK, 403, 403, 403, 403, 401, 403, 401, OK),
    "read": (OK, OK, OK, OK, 404, 401, OK, PUBLIC_READ, 404),
    "read list": (OK, OK, OK, OK, OK, PUBLIC_READ, OK, PUBLIC_READ, OK),
    "write": (OK, OK, OK, 403, 404, 401, 403, 401, 404),
    "manage": (OK, OK, 403, 403, 404, 401, 403, 401, 404),
    # Routes of an object that only the user who made it (here the owner) and administrators see.
    "starter": (OK, OK, 404, 404, 404, 401, 404, 401, 404),
}


def route_table(app: Litestar) -> Iterator[tuple[str, str, BaseRouteHandler]]:
    """Yield (method, path, handler) for every route handler of `app`."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods):
                yield method, route.path, handler


# The route table of an app built like the one under test; building it starts nothing.
ROUTES = sorted((method, path) for method, path, _ in route_table(create_app(Settings(), [])))


def case_for(method: str, path: str) -> Case:
    if method == "OPTIONS":
        return OPTIONS_CASE
    return CASES[(method, path)]


def expected_status(case: Case, column: str, public_read: bool) -> int:
    if column == "admin on missing" and case.missing_status is not None:
        return case.missing_status
    row = case.row or ("read list" if case.rule == "read" and not case.names_object else case.rule)
    status = EXPECTED[row][list(COLUMNS).index(column)]
    if status == PUBLIC_READ:
        return case.ok if public_read else 401
    return case.ok if status == OK else status


@dataclass
class World:
    client: TestClient
    public_read: bool
    # Authorization headers and user ids by caller; the anonymous caller has neither.
    headers: dict[str, dict[str, str]]
    user_ids: dict[str, str]
    targets: dict[str, dict[str, str]]


def _write_projects(root: Path) -> list[Path]:
    penguins, iris = copy_bundled_examples(root)
    roles = f"permissions:\n  owners: [{OWNER}]\n  editors: [{EDITOR}]\n  viewers: [{VIEWER}]"
    penguins.write_text(penguins.read_text().replace("is_public: true", f"is_public: false\n{roles}"))
    iris.write_text(iris.read_text().replace("is_public: true", f"is_public: true\npermissions:\n  owners: [{OWNER}]"))
    return [penguins, iris]


def _first_run_id(client: TestClient, workflow_id: str) -> str:
    runs = client.app.state.catalog.runs.list_for_workflow(workflow_id)
    assert runs, f"workflow {workflow_id} has no run; the matrix needs one"
    run_id: str = runs[0].id
    return run_id


def _first_file_id(client: TestClient, workflow_id: str) -> str:
    files = client.app.state.catalog.files.list_for_workflow(workflow_id)
    assert files, f"workflow {workflow_id} has no file; the matrix needs one"
    file_id: str = files[0].id
    return file_id


def add_dashboard(client: TestClient, project_id: str) -> str:
    """Store a dashboard of one table in the project; return its id."""
    now = utc_now()
    record = DashboardRecord(
        id=secrets.token_hex(12),
        project_id=project_id,
        title=f"Matrix dashboard {now.isoformat()}",
        last_saved_ts=now,
        creation_time=now,
        definition={"components": []},
    )
    client.app.state.catalog.dashboards.change_project(project_id, lambda _: (DashboardChanges(put=[record]), None))
    return record.id


@pytest.fixture(scope="module", params=[False, True], ids=["public_read_off", "public_read_on"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    public_read: bool = request.param
    root = tmp_path_factory.mktemp("matrix")
    settings_path = write_settings(root, _write_projects(root))
    environ = {"DEPICTIO_AUTH_PUBLIC_READ": str(public_read).lower(), "DEPICTIO_INGEST_CLIENT_ROOTS": SENT_LOCATION}
    settings = load_settings(str(settings_path), environ=environ)
    app = create_app(settings, load_projects(settings.projects), admin_password=PASSWORD)
    with TestClient(app) as client:
        headers = {
            "admin": login(client, "admin@example.org", PASSWORD),
            "owner": add_user(client, OWNER, PASSWORD),
            "editor": add_user(client, EDITOR, PASSWORD),
            "viewer": add_user(client, VIEWER, PASSWORD),
            "stranger": add_user(client, STRANGER, PASSWORD),
            "anonymous": {},
        }
        add_user(client, LOGIN_USER, PASSWORD)
        targets = {
            "private": {
                **PRIVATE_PROJECT,
                "run_id": _first_run_id(client, PRIVATE_PROJECT["workflow_id"]),
                "file_id": _first_file_id(client, PRIVATE_PROJECT["workflow_id"]),
                "dashboard_id": add_dashboard(client, PRIVATE_PROJECT["project_id"]),
            },
            "public": {
                **PUBLIC_PROJECT,
                "run_id": _first_run_id(client, PUBLIC_PROJECT["workflow_id"]),
                "file_id": _first_file_id(client, PUBLIC_PROJECT["workflow_id"]),
                "dashboard_id": add_dashboard(client, PUBLIC_PROJECT["project_id"]),
            },
            "missing": MISSING_OBJECT,
        }
        emails = {
            "admin": "admin@example.org",
            "owner": OWNER,
            "editor": EDITOR,
            "viewer": VIEWER,
            "stranger": STRANGER,
        }
        user_ids = {name: user_id_for(email) for name, email in emails.items()}
        yield World(client=client, public_read=public_read, headers=headers, user_ids=user_ids, targets=targets)


def _fill(template: str, target: dict[str, str]) -> str:
    """Put the target's ids into a route path (`{run_id:str}`) or a query template (`{run_id}`)."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda match: quote(target.get(match.group(1), "x"), safe=""), template)


def _secrets_of_others(world: World, caller: str) -> list[str]:
    """Return the token secrets and password hashes that `caller` must never receive."""
    catalog = world.client.app.state.catalog
    secrets = [str(row[0]) for row in catalog.store.query("SELECT password_hash FROM users")]
    others = [name for name in world.headers if name not in (caller, "anonymous")]
    secrets += [world.headers[name]["Authorization"].removeprefix("Bearer ") for name in others]

    # Columns of the tokens table that hold secrets: the jtis, and any stored token or hash.
    # Times such as refresh_expire_datetime are no secrets.
    columns = [
        str(row[0])
        for row in catalog.store.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'tokens'")
        if any(word in str(row[0]) for word in ("jti", "secret", "refresh_token", "access_token", "hash"))
    ]
    other_ids = [world.user_ids[name] for name in others]
    placeholders = ", ".join("?" * len(other_ids))
    for row in catalog.store.query(
        f"SELECT {', '.join(columns)} FROM tokens WHERE user_id IN ({placeholders})", other_ids
    ):
        secrets += [str(value) for value in row if value]
    return secrets


def _call(world: World, method: str, path: str, case: Case, column: str) -> Any:
    caller, target_name = COLUMNS[column]
    target = world.targets[target_name]
    if case.prepare is not None and target_name != "missing":
        target = {**target, **case.prepare(world, target_name)}
    url = _fill(path, target)
    params = {key: _fill(value, target) for key, value in case.query.items()}
    json_body = case.body(target, target_name) if case.body is not None else None
    headers = world.headers[caller]
    content = None
    if case.text is not None:
        content = case.text(target, target_name).encode()
        headers = {**headers, "Content-Type": "text/plain"}
    try:
        return world.client.request(
            method,
            url,
            params=params,
            json=json_body,
            data=case.form,
            files=case.files,
            content=content,
            headers=headers,
        )
    finally:
        # The web sign-in sets a session cookie, which must not sign in the next caller.
        world.client.cookies.clear()


def test_every_route_has_a_case() -> None:
    missing = [f"{method} {path}" for method, path in ROUTES if method != "OPTIONS" and (method, path) not in CASES]
    stale = [f"{method} {path}" for method, path in CASES if (method, path) not in ROUTES]
    assert missing == [], f"routes without a row in CASES: {missing}"
    assert stale == [], f"rows in CASES for routes that no longer exist: {stale}"


def test_every_route_declares_its_rule() -> None:
    for method, path, handler in route_table(create_app(Settings(), [])):
        expected = case_for(method, path).rule
        assert route_rule(handler) == expected, f"{method} {path} declares {handler.opt.get('access')!r}"


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{method} {path}" for method, path in ROUTES])
def test_route_status_for_every_caller(world: World, method: str, path: str) -> None:
    case = case_for(method, path)
    for column in COLUMNS:
        response = _call(world, method, path, case, column)
        expected = expected_status(case, column, world.public_read)

        assert response.status_code == expected, f"{column}: {method} {path} -> {response.text[:300]}"
        # Litestar's documentation pages return HTML for unknown paths. Every other error is JSON.
        if response.status_code >= 400 and not path.startswith("/docs"):
            assert set(response.json()) == {"status_code", "detail"}, f"{column}: {response.text[:300]}"
            assert response.json()["status_code"] == response.status_code, column
        assert "$argon2" not in response.text, f"{column}: {method} {path} returned a password hash"
        for secret in _secrets_of_others(world, COLUMNS[column][0]):
            assert secret not in response.text, f"{column}: {method} {path} returned another user's secret"
