"""Dashboards through the real app: YAML and JSON import and export, save, delete, visibility and access.

The project under test is the bundled penguins example, made private with an owner, an
editor and a viewer. The bundled iris example is public and owned by the same owner.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar.testing import TestClient

from api import create_app
from api.controllers.dashboards import MAX_DASHBOARD_BYTES
from catalog import Catalog, ConflictError, DashboardChanges, DashboardRecord, utc_now
from config import load_projects, load_settings
from tests.api.conftest import API, add_user, login
from tests.examples import BUNDLED_PHYSICAL_FEATURES_ID, copy_bundled_examples, write_settings

PASSWORD = "dashboard-test-password"
OWNER = "dash-owner@example.org"
EDITOR = "dash-editor@example.org"
VIEWER = "dash-viewer@example.org"
STRANGER = "dash-stranger@example.org"

PENGUINS = "Palmer penguins (bundled example)"
PENGUINS_ID = "6a0001000000000000000001"
PENGUINS_WORKFLOW = "python/penguin_species_analysis"
IRIS = "Iris (bundled example)"
IRIS_ID = "6a0002000000000000000001"
IRIS_TABLE_ID = "6a0002000000000000000003"
YAML_HEADERS = {"Content-Type": "text/plain"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("dashboards")
    penguins, iris = copy_bundled_examples(root)
    roles = f"permissions:\n  owners: [{OWNER}]\n  editors: [{EDITOR}]\n  viewers: [{VIEWER}]"
    penguins.write_text(penguins.read_text().replace("is_public: true", f"is_public: false\n{roles}"))
    iris.write_text(iris.read_text().replace("is_public: true", f"is_public: true\npermissions:\n  owners: [{OWNER}]"))
    settings = load_settings(str(write_settings(root, [penguins, iris])), environ={})
    app = create_app(settings, load_projects(settings.projects), admin_password=PASSWORD)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def headers(client: TestClient) -> dict[str, dict[str, str]]:
    return {
        "admin": login(client, "admin@example.org", PASSWORD),
        "owner": add_user(client, OWNER, PASSWORD),
        "editor": add_user(client, EDITOR, PASSWORD),
        "viewer": add_user(client, VIEWER, PASSWORD),
        "stranger": add_user(client, STRANGER, PASSWORD),
        "anonymous": {},
    }


def card(tag: str, collection: str = "physical_features", workflow: str | None = PENGUINS_WORKFLOW) -> dict[str, Any]:
    component = {"tag": tag, "component_type": "card", "data_collection_tag": collection, "column_name": "body_mass_g"}
    if workflow is not None:
        component["workflow_tag"] = workflow
    return component


def dashboard(title: str, **fields: Any) -> dict[str, Any]:
    """Return a small dashboard in Depictio's YAML form, in the penguins project unless `fields` override them."""
    return {"title": title, "project_tag": PENGUINS, "subtitle": "first", "components": [card("mass")], **fields}


def import_yaml(client: TestClient, user: dict[str, str], document: dict[str, Any] | str, **query: Any) -> Any:
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    return client.post(
        f"{API}/dashboards/import/yaml", content=text.encode(), params=query, headers={**user, **YAML_HEADERS}
    )


def imported_id(response: Any) -> str:
    assert response.status_code == 200, response.text
    dashboard_id: str = response.json()["dashboard_id"]
    return dashboard_id


def get(client: TestClient, user: dict[str, str], dashboard_id: str) -> dict[str, Any]:
    response = client.get(f"{API}/dashboards/get/{dashboard_id}", headers=user)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def listed(client: TestClient, user: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    response = client.get(f"{API}/dashboards/list", params=query, headers=user)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


def test_import_yaml_finds_project_by_tag(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    response = import_yaml(client, headers["editor"], dashboard("By tag"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["status"] == "created"
    assert body["updated"] is False
    assert body["title"] == "By tag"
    assert body["project_id"] == PENGUINS_ID
    assert len(body["dashboard_id"]) == 24
    assert "dash_url" in body
    entry = next(item for item in listed(client, headers["viewer"]) if item["dashboard_id"] == body["dashboard_id"])
    assert entry["title"] == "By tag"
    assert entry["project_id"] == PENGUINS_ID


def test_import_yaml_with_project_id_over_tag(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    document = dashboard("By id", project_tag="no such project")

    response = import_yaml(client, headers["editor"], document, project_id=PENGUINS_ID)

    assert response.status_code == 200, response.text
    assert response.json()["project_id"] == PENGUINS_ID


def test_import_same_title_is_conflict(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    imported_id(import_yaml(client, headers["editor"], dashboard("Twice")))

    response = import_yaml(client, headers["editor"], dashboard("Twice"))

    assert response.status_code == 409
    assert "Twice" in response.json()["detail"]


def test_import_existing_keep_leaves_dashboard(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    first = imported_id(import_yaml(client, headers["editor"], dashboard("Kept")))

    response = import_yaml(client, headers["editor"], dashboard("Kept", subtitle="second"), existing="keep")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "kept"
    assert response.json()["dashboard_id"] == first
    assert get(client, headers["viewer"], first)["subtitle"] == "first"
    assert get(client, headers["viewer"], first)["version"] == 1


def test_import_existing_replace_keeps_id(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    first = imported_id(import_yaml(client, headers["editor"], dashboard("Replaced")))
    created = get(client, headers["viewer"], first)["creation_time"]

    response = import_yaml(client, headers["editor"], dashboard("Replaced", subtitle="second"), existing="replace")

    assert response.json()["status"] == "replaced"
    assert response.json()["updated"] is True
    assert response.json()["dashboard_id"] == first
    stored = get(client, headers["viewer"], first)
    assert stored["subtitle"] == "second"
    assert stored["version"] == 2
    assert stored["creation_time"] == created


def test_import_overwrite_replaces(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    first = imported_id(import_yaml(client, headers["editor"], dashboard("Overwritten")))

    response = import_yaml(client, headers["editor"], dashboard("Overwritten", subtitle="second"), overwrite="true")

    assert response.json()["status"] == "replaced"
    assert response.json()["dashboard_id"] == first


def test_import_main_title_and_keep_titles(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    renamed = imported_id(import_yaml(client, headers["editor"], dashboard("File title A"), main_title="Given title A"))
    assert get(client, headers["viewer"], renamed)["title"] == "Given title A"

    first = imported_id(import_yaml(client, headers["editor"], dashboard("File title B"), source_key="file:b.yaml"))
    save = {**get(client, headers["editor"], first), "title": "Renamed in a viewer B"}
    assert client.post(f"{API}/dashboards/save/{first}", json=save, headers=headers["editor"]).status_code == 200

    response = import_yaml(
        client,
        headers["editor"],
        dashboard("File title B", subtitle="second"),
        source_key="file:b.yaml",
        existing="replace",
        keep_titles="true",
    )

    assert response.json()["dashboard_id"] == first
    assert response.json()["title"] == "Renamed in a viewer B"
    assert get(client, headers["viewer"], first)["subtitle"] == "second"


def test_child_tab_needs_its_main_dashboard(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    tab = dashboard("Tab of Main C", is_main_tab=False, parent_dashboard_tag="Main C", tab_order=2)

    missing_parent = import_yaml(client, headers["editor"], tab)
    main = imported_id(import_yaml(client, headers["editor"], dashboard("Main C")))
    created = import_yaml(client, headers["editor"], tab)

    assert missing_parent.status_code == 400
    assert "Main C" in missing_parent.json()["detail"]
    stored = get(client, headers["viewer"], imported_id(created))
    assert stored["is_main_tab"] is False
    assert stored["parent_dashboard_id"] == main
    assert stored["parent_dashboard_title"] == "Main C"
    assert stored["tab_order"] == 2
    main_ids = {item["dashboard_id"] for item in listed(client, headers["viewer"])}
    all_ids = {item["dashboard_id"] for item in listed(client, headers["viewer"], include_child_tabs="true")}
    assert stored["dashboard_id"] not in main_ids
    assert stored["dashboard_id"] in all_ids


def test_child_tab_without_parent_tag_rejected(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    response = import_yaml(client, headers["editor"], dashboard("Orphan tab", is_main_tab=False))

    assert response.status_code == 400
    assert "parent_dashboard_tag" in response.json()["detail"]


def test_parent_found_by_source_key_after_rename(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    main = imported_id(import_yaml(client, headers["editor"], dashboard("Main D"), source_key="file:d.yaml"))
    save = {**get(client, headers["editor"], main), "title": "Main D renamed"}
    assert client.post(f"{API}/dashboards/save/{main}", json=save, headers=headers["editor"]).status_code == 200
    tab = dashboard("Tab of Main D", is_main_tab=False, parent_dashboard_tag="Main D")

    response = import_yaml(client, headers["editor"], tab, parent_source_key="file:d.yaml")

    assert get(client, headers["viewer"], imported_id(response))["parent_dashboard_id"] == main


def test_tab_cannot_replace_main_dashboard(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    main = imported_id(import_yaml(client, headers["editor"], dashboard("Main T"), source_key="file:t.yaml"))
    tab = dashboard("Tab T", is_main_tab=False, parent_dashboard_tag="Main T")

    response = import_yaml(client, headers["editor"], tab, source_key="file:t.yaml", existing="replace")

    assert response.status_code == 400
    assert "Main T" in response.json()["detail"]
    assert get(client, headers["viewer"], main)["is_main_tab"] is True


def family(title: str, tab_titles: list[str]) -> dict[str, Any]:
    tabs = [{"title": name, "components": [card(f"card-{name}")]} for name in tab_titles]
    return {"main_dashboard": dashboard(title), "tabs": tabs}


def test_multi_tab_import_and_yaml_round_trip(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    response = import_yaml(client, headers["editor"], family("Family E", ["E one", "E two"]))
    main = imported_id(response)
    tabs = response.json()["tabs"]

    exported = client.get(f"{API}/dashboards/{main}/yaml", headers=headers["viewer"])
    again = import_yaml(client, headers["editor"], exported.text, overwrite="true")

    assert [tab["title"] for tab in tabs] == ["E one", "E two"]
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-yaml")
    document = yaml.safe_load(exported.text)
    assert document["main_dashboard"]["title"] == "Family E"
    assert document["main_dashboard"]["project_tag"] == PENGUINS
    assert document["main_dashboard"]["components"] == [card("mass")]
    assert [tab["title"] for tab in document["tabs"]] == ["E one", "E two"]
    assert again.json()["status"] == "replaced"
    assert again.json()["dashboard_id"] == main
    assert again.json()["tabs"] == tabs


def test_multi_tab_keep_adds_missing_tabs(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    first = import_yaml(client, headers["editor"], family("Family F", ["F one"]), source_key="t:f", existing="keep")

    response = import_yaml(
        client, headers["editor"], family("Family F", ["F one", "F two"]), source_key="t:f", existing="keep"
    )

    assert first.json()["status"] == "created"
    assert response.json()["status"] == "kept"
    assert response.json()["dashboard_id"] == first.json()["dashboard_id"]
    assert response.json()["tabs_added"] == 1
    assert [tab["title"] for tab in response.json()["tabs"]] == ["F one", "F two"]
    assert response.json()["tabs"][0] == first.json()["tabs"][0]


def test_multi_tab_replace_drops_removed_tabs(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    first = import_yaml(client, headers["editor"], family("Family G", ["G one", "G two"]), source_key="t:g")
    dropped = first.json()["tabs"][1]["dashboard_id"]

    response = import_yaml(
        client, headers["editor"], family("Family G", ["G one"]), source_key="t:g", existing="replace"
    )

    assert response.json()["status"] == "replaced"
    assert response.json()["tabs"][0]["dashboard_id"] == first.json()["tabs"][0]["dashboard_id"]
    assert client.get(f"{API}/dashboards/get/{dropped}", headers=headers["admin"]).status_code == 404


def test_multi_tab_rejects_repeated_tab_title(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    response = import_yaml(client, headers["editor"], family("Family H", ["H", "H"]))

    assert response.status_code == 400
    assert "tabs[1].title" in response.json()["detail"]


@pytest.mark.parametrize(
    ("component", "named"),
    [
        (card("c", collection="no_such_table"), "'no_such_table'"),
        (card("c", workflow="python/no_such_workflow"), "'python/no_such_workflow'"),
        (card("c", collection="iris_table", workflow=None), "'iris_table'"),
        ({"tag": "c", "component_type": "figure", "dc_id": IRIS_TABLE_ID}, repr(IRIS_TABLE_ID)),
        ({"tag": "c", "component_type": "text", "values": {"n": {"dc": "absent_dc"}}}, "'absent_dc'"),
        ({**card("m"), "component_type": "map", "geojson_dc_tag": "shapes"}, "'shapes'"),
    ],
    ids=["collection", "workflow", "other project's tag", "other project's id", "text value", "geojson"],
)
def test_missing_collection_rejected_with_name(
    client: TestClient, headers: dict[str, dict[str, str]], component: dict[str, Any], named: str
) -> None:
    title = f"Missing {named}"
    document = dashboard(title, components=[card("fine"), component])

    response = import_yaml(client, headers["editor"], document)

    assert response.status_code == 400
    assert named in response.json()["detail"]
    assert PENGUINS in response.json()["detail"]
    assert title not in [item["title"] for item in listed(client, headers["admin"])]


def test_component_without_workflow_tag_resolves(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    document = dashboard(
        "No workflow tag", components=[card("c", workflow=None), card("d", workflow="penguin_species_analysis")]
    )

    response = import_yaml(client, headers["editor"], document)

    assert response.status_code == 200, response.text


def test_missing_collection_in_tab_rejected(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    document = family("Family I", ["I one"])
    document["tabs"][0]["components"] = [card("bad", collection="absent_in_tab")]

    response = import_yaml(client, headers["editor"], document)

    assert response.status_code == 400
    assert "'absent_in_tab'" in response.json()["detail"]
    assert "Family I" not in [item["title"] for item in listed(client, headers["admin"])]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("title: [unclosed", "not valid YAML"),
        ("- a list", "must be a mapping"),
        ("subtitle: no title", "title is missing"),
        ("title: t\ncomponents: {}", "components must be a list"),
        ("main_dashboard: [1]", "main_dashboard must be a mapping"),
        ("title: t\nis_main_tab: maybe", "is_main_tab must be true or false"),
        ("a: &a [*a]\ntitle: t", "nested more than"),
        ("title: t\nsize: " + "9" * 5000, "cannot be read"),
    ],
    ids=["syntax", "list", "no title", "components", "main_dashboard", "is_main_tab", "self reference", "huge integer"],
)
def test_invalid_yaml_rejected(
    client: TestClient, headers: dict[str, dict[str, str]], body: str, expected: str
) -> None:
    response = import_yaml(client, headers["editor"], body, project_id=PENGUINS_ID)

    assert response.status_code == 400
    assert expected in response.json()["detail"]


def test_alias_expansion_rejected(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    # Each level repeats the one before ten times: 10^8 values once the aliases are expanded.
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * 10)}]" for level in range(1, 8)]
    body = "\n".join([*lines, "title: bomb"])

    response = import_yaml(client, headers["editor"], body, project_id=PENGUINS_ID)

    assert response.status_code == 400
    assert "values" in response.json()["detail"]


def test_import_body_size_limited(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    body = "title: big\nsubtitle: " + "x" * MAX_DASHBOARD_BYTES

    response = import_yaml(client, headers["editor"], body, project_id=PENGUINS_ID)

    assert response.status_code == 413


def test_import_rejects_binary_body(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    response = client.post(
        f"{API}/dashboards/import/yaml",
        content=b"title: \xff\xfe",
        params={"project_id": PENGUINS_ID},
        headers={**headers["editor"], **YAML_HEADERS},
    )

    assert response.status_code == 400
    assert "UTF-8" in response.json()["detail"]


def test_import_names_no_project(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    document = dashboard("Nowhere")
    del document["project_tag"]

    response = import_yaml(client, headers["editor"], document)

    assert response.status_code == 400
    assert "project_tag" in response.json()["detail"]


def test_import_by_tag_follows_access(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    unknown = import_yaml(client, headers["editor"], dashboard("Unknown project", project_tag="no such project"))
    viewer = import_yaml(client, headers["viewer"], dashboard("By a viewer"))
    stranger = import_yaml(client, headers["stranger"], dashboard("By a stranger"))
    anonymous = import_yaml(client, headers["anonymous"], dashboard("By nobody"))

    assert unknown.status_code == 404
    assert viewer.status_code == 403
    # A private project is not found for those who may not read it, so names cannot be probed.
    assert stranger.status_code == 404
    assert anonymous.status_code == 401


def test_list_shows_readable_projects_only(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    private = imported_id(import_yaml(client, headers["editor"], dashboard("Private J")))
    public = imported_id(import_yaml(client, headers["owner"], dashboard("Public J", project_tag=IRIS, components=[])))

    stranger_ids = {item["dashboard_id"] for item in listed(client, headers["stranger"])}
    owner_ids = {item["dashboard_id"] for item in listed(client, headers["owner"], project_id=IRIS_ID)}

    assert public in stranger_ids
    assert private not in stranger_ids
    assert owner_ids == {
        item["dashboard_id"] for item in listed(client, headers["owner"]) if item["project_id"] == IRIS_ID
    }
    assert private not in owner_ids


def test_export_child_tab_names_parent(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    imported_id(import_yaml(client, headers["editor"], dashboard("Main K")))
    tab = imported_id(
        import_yaml(client, headers["editor"], dashboard("Tab K", is_main_tab=False, parent_dashboard_tag="Main K"))
    )

    exported = client.get(f"{API}/dashboards/{tab}/yaml", headers=headers["viewer"])

    document = yaml.safe_load(exported.text)
    assert document["title"] == "Tab K"
    assert document["is_main_tab"] is False
    assert document["parent_dashboard_tag"] == "Main K"
    assert document["project_tag"] == PENGUINS


def test_json_export_and_import(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    source = imported_id(import_yaml(client, headers["editor"], dashboard("Exported L")))

    export = client.get(f"{API}/dashboards/{source}/json", headers=headers["viewer"])
    imported = client.post(f"{API}/dashboards/import/json", json=export.json(), headers=headers["editor"])

    assert export.status_code == 200
    body = export.json()
    assert body["_depictio_export_version"] == "1.0"
    assert body["_export_source"] == {"dashboard_id": source, "project_tag": PENGUINS}
    assert body["dashboard"]["title"] == "Exported L"
    assert body["_data_integrity"]["data_collections"] == [
        {
            "workflow_tag": PENGUINS_WORKFLOW,
            "data_collection_tag": "physical_features",
            "data_collection_id": BUNDLED_PHYSICAL_FEATURES_ID,
        }
    ]
    assert imported.status_code == 200, imported.text
    assert imported.json()["dashboard_id"] != source
    assert imported.json()["project_id"] == PENGUINS_ID
    assert get(client, headers["viewer"], imported.json()["dashboard_id"])["components"] == [card("mass")]


def test_json_import_binds_ids_by_tags(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    foreign = {
        "index": "a1",
        "component_type": "card",
        "dc_id": "0" * 24,
        "wf_id": "1" * 24,
        "dc_config": {"data_collection_tag": "physical_features"},
    }
    export = {
        "_depictio_export_version": "1.0",
        "_export_source": {"dashboard_id": "2" * 24, "project_tag": PENGUINS},
        "dashboard": {"title": "From another server M", "stored_metadata": [foreign]},
    }

    response = client.post(f"{API}/dashboards/import/json", json=export, headers=headers["editor"])

    assert response.status_code == 200, response.text
    stored = get(client, headers["viewer"], response.json()["dashboard_id"])
    assert stored["stored_metadata"][0]["dc_id"] == BUNDLED_PHYSICAL_FEATURES_ID
    assert stored["stored_metadata"][0]["wf_id"] == "6a0001000000000000000002"
    exported = yaml.safe_load(
        client.get(f"{API}/dashboards/{stored['dashboard_id']}/yaml", headers=headers["viewer"]).text
    )
    assert exported["components"][0]["data_collection_tag"] == "physical_features"
    assert exported["components"][0]["workflow_tag"] == PENGUINS_WORKFLOW
    assert "dc_id" not in exported["components"][0]


def test_json_import_rejects_unknown_version(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    export = {"_depictio_export_version": "2.0", "dashboard": {"title": "Future"}}

    response = client.post(
        f"{API}/dashboards/import/json", json=export, params={"project_id": PENGUINS_ID}, headers=headers["editor"]
    )

    assert response.status_code == 400
    assert "_depictio_export_version" in response.json()["detail"]


def test_json_export_needs_read_access(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    private = imported_id(import_yaml(client, headers["editor"], dashboard("Private N")))

    stranger = client.get(f"{API}/dashboards/{private}/json", headers=headers["stranger"])
    anonymous = client.get(f"{API}/dashboards/{private}/json")

    assert stranger.status_code == 404
    assert anonymous.status_code == 401


def test_save_creates_then_updates(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    dashboard_id = "0123456789abcdef0123a001"
    body = {
        "title": "Saved O",
        "project_id": PENGUINS_ID,
        "stored_metadata": [{"index": "x1", "component_type": "table", "dc_id": BUNDLED_PHYSICAL_FEATURES_ID}],
        "permissions": {"owners": [], "editors": [], "viewers": ["*"]},
        "is_public": True,
    }

    created = client.post(f"{API}/dashboards/save/{dashboard_id}", json=body, headers=headers["editor"])
    first = get(client, headers["viewer"], dashboard_id)
    updated = client.post(
        f"{API}/dashboards/save/{dashboard_id}", json={"title": "Saved O again"}, headers=headers["editor"]
    )
    second = get(client, headers["viewer"], dashboard_id)

    assert created.status_code == 200, created.text
    assert created.json()["dashboard_id"] == dashboard_id
    assert first["stored_metadata"] == body["stored_metadata"]
    assert first["is_public"] is False
    assert [owner["email"] for owner in first["permissions"]["owners"]] == [OWNER]
    assert updated.status_code == 200, updated.text
    assert second["title"] == "Saved O again"
    assert second["version"] == 2
    assert second["creation_time"] == first["creation_time"]
    assert "stored_metadata" not in second


@pytest.mark.parametrize(
    ("dashboard_id", "body", "expected"),
    [
        ("not-an-id", {"title": "t", "project_id": PENGUINS_ID}, "24 hexadecimal"),
        ("0123456789abcdef0123a002", {"title": "t"}, "project_id is missing"),
        ("0123456789abcdef0123a002", {"project_id": PENGUINS_ID}, "title is missing"),
        ("0123456789abcdef0123a002", {"title": "t", "project_id": "x"}, "project_id must be"),
        ("0123456789abcdef0123a002", {"title": "t", "project_id": PENGUINS_ID, "dashboard_id": "f" * 24}, "differs"),
        (
            "0123456789abcdef0123a002",
            {"title": "t", "project_id": PENGUINS_ID, "is_main_tab": False},
            "parent_dashboard_id",
        ),
        (
            "0123456789abcdef0123a002",
            {"title": "t", "project_id": PENGUINS_ID, "components": [card("c", collection="gone")]},
            "'gone'",
        ),
    ],
    ids=["bad id", "no project", "no title", "bad project id", "other id", "tab without parent", "missing collection"],
)
def test_save_rejects_invalid_body(
    client: TestClient, headers: dict[str, dict[str, str]], dashboard_id: str, body: dict[str, Any], expected: str
) -> None:
    response = client.post(f"{API}/dashboards/save/{dashboard_id}", json=body, headers=headers["editor"])

    assert response.status_code == 400
    assert expected in response.json()["detail"]


def test_save_cannot_move_dashboard(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    dashboard_id = imported_id(import_yaml(client, headers["owner"], dashboard("Stays P")))

    response = client.post(
        f"{API}/dashboards/save/{dashboard_id}",
        json={"title": "Moved", "project_id": IRIS_ID},
        headers=headers["owner"],
    )

    assert response.status_code == 400
    assert "stays in its project" in response.json()["detail"]


def test_save_child_tab_under_main(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    main = imported_id(import_yaml(client, headers["editor"], dashboard("Main Q")))
    tab_id = "0123456789abcdef0123a003"
    body = {
        "title": "Tab Q",
        "project_id": PENGUINS_ID,
        "is_main_tab": False,
        "parent_dashboard_id": main,
        "tab_order": 3,
    }

    response = client.post(f"{API}/dashboards/save/{tab_id}", json=body, headers=headers["editor"])
    as_parent = client.post(
        f"{API}/dashboards/save/0123456789abcdef0123a004",
        json={**body, "title": "Tab of a tab", "parent_dashboard_id": tab_id},
        headers=headers["editor"],
    )

    assert response.status_code == 200, response.text
    stored = get(client, headers["viewer"], tab_id)
    assert stored["parent_dashboard_id"] == main
    assert stored["tab_order"] == 3
    assert as_parent.status_code == 400


def test_delete_main_deletes_its_tabs(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    response = import_yaml(client, headers["editor"], family("Family R", ["R one", "R two"]))
    main = imported_id(response)

    deleted = client.delete(f"{API}/dashboards/delete/{main}", headers=headers["editor"])
    again = client.delete(f"{API}/dashboards/delete/{main}", headers=headers["editor"])

    assert deleted.status_code == 200
    assert deleted.json()["child_tabs_deleted"] == 2
    assert again.status_code == 404
    for tab in response.json()["tabs"]:
        assert client.get(f"{API}/dashboards/get/{tab['dashboard_id']}", headers=headers["admin"]).status_code == 404


def test_toggle_public_status_sets_project_visibility(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    dashboard_id = imported_id(import_yaml(client, headers["editor"], dashboard("Visibility S")))
    url = f"{API}/dashboards/toggle_public_status/{dashboard_id}"

    by_editor = client.post(url, json={"is_public": True}, headers=headers["editor"])
    made_public = client.post(url, json={"is_public": True}, headers=headers["owner"])
    seen_by_stranger = client.get(f"{API}/dashboards/get/{dashboard_id}", headers=headers["stranger"])
    made_private = client.post(url, json={"is_public": False}, headers=headers["owner"])
    hidden_again = client.get(f"{API}/dashboards/get/{dashboard_id}", headers=headers["stranger"])
    no_flag = client.post(url, json={}, headers=headers["owner"])

    assert by_editor.status_code == 403
    assert made_public.status_code == 200
    assert made_public.json()["is_public"] is True
    assert made_public.json()["dashboards_updated"] >= 1
    assert seen_by_stranger.status_code == 200
    assert seen_by_stranger.json()["is_public"] is True
    assert made_private.status_code == 200
    assert hidden_again.status_code == 404
    assert no_flag.status_code == 400
    assert "is_public" in no_flag.json()["detail"]


def test_missing_dashboard_is_not_found(client: TestClient, headers: dict[str, dict[str, str]]) -> None:
    for path in ("get/{id}", "{id}/yaml", "{id}/json"):
        response = client.get(f"{API}/dashboards/{path.format(id='e' * 24)}", headers=headers["admin"])
        assert response.status_code == 404, path
        assert "dashboard" in response.json()["detail"], path


def test_project_removal_deletes_dashboards(tmp_path: Path) -> None:
    penguins, iris = copy_bundled_examples(tmp_path)
    projects = load_projects([str(penguins), str(iris)])
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    try:
        catalog.projects.sync_from_config(projects)
        now = utc_now()
        record = DashboardRecord(
            id="ab" * 12, project_id=IRIS_ID, title="Goes with iris", last_saved_ts=now, creation_time=now
        )
        catalog.dashboards.change_project(IRIS_ID, lambda _: (DashboardChanges(put=[record]), None))

        catalog.projects.sync_from_config([project for project in projects if project.id != IRIS_ID])

        assert catalog.dashboards.get(record.id) is None
    finally:
        catalog.close()


def test_dashboard_id_unique_across_projects(tmp_path: Path) -> None:
    penguins, iris = copy_bundled_examples(tmp_path)
    catalog = Catalog(str(tmp_path / "catalog.duckdb"))
    try:
        catalog.projects.sync_from_config(load_projects([str(penguins), str(iris)]))
        now = utc_now()
        record = DashboardRecord(id="cd" * 12, project_id=IRIS_ID, title="Iris", last_saved_ts=now, creation_time=now)
        catalog.dashboards.change_project(IRIS_ID, lambda _: (DashboardChanges(put=[record]), None))
        clashing = DashboardRecord(
            id=record.id, project_id=PENGUINS_ID, title="Penguins", last_saved_ts=now, creation_time=now
        )

        with pytest.raises(ConflictError):
            catalog.dashboards.change_project(PENGUINS_ID, lambda _: (DashboardChanges(put=[clashing]), None))

        stored = catalog.dashboards.get(record.id)
        assert stored is not None
        assert stored.project_id == IRIS_ID
    finally:
        catalog.close()
