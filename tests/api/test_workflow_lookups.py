"""Workflow and data collection lookups: all workflows, by name and engine, and tags by id."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from api import create_app
from config import load_projects, load_settings
from tests.api.conftest import API, add_user, login
from tests.examples import copy_bundled_examples, write_settings

PASSWORD = "lookup-test-password"
OWNER = "owner@example.org"
STRANGER = "stranger@example.org"
PENGUINS_WORKFLOW = "6a0001000000000000000002"
PHYSICAL_FEATURES = "6a0001000000000000000003"
IRIS_WORKFLOW = "6a0002000000000000000002"
# A private copy of iris owned by OWNER: its workflow has the name and engine of iris's.
IRIS_COPY_WORKFLOW = "6a0003000000000000000002"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("lookups")
    penguins, iris = copy_bundled_examples(root)
    owners = f"permissions:\n  owners: [{OWNER}]"
    penguins.write_text(penguins.read_text().replace("is_public: true", f"is_public: false\n{owners}"))
    copy = root / "bundled" / "iris" / "copy.yaml"
    text = iris.read_text().replace("6a0002", "6a0003").replace("Iris (bundled example)", "Iris copy")
    copy.write_text(text.replace("is_public: true", f"is_public: false\n{owners}"))
    settings = load_settings(str(write_settings(root, [penguins, iris, copy])), environ={})
    app = create_app(settings, load_projects(settings.projects), admin_password=PASSWORD)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def users(client: TestClient) -> dict[str, dict[str, str]]:
    return {
        "admin": login(client, "admin@example.org", PASSWORD),
        "owner": add_user(client, OWNER, PASSWORD),
        "stranger": add_user(client, STRANGER, PASSWORD),
    }


def test_all_workflows_are_the_readable_ones(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    owner = client.get(f"{API}/workflows/get_all_workflows", headers=users["owner"]).json()
    stranger = client.get(f"{API}/workflows/get_all_workflows", headers=users["stranger"]).json()

    assert sorted(item["_id"] for item in owner) == sorted([PENGUINS_WORKFLOW, IRIS_WORKFLOW, IRIS_COPY_WORKFLOW])
    assert [item["_id"] for item in stranger] == [IRIS_WORKFLOW]
    assert stranger[0]["project_id"] == "6a0002000000000000000001"
    assert stranger[0]["data_collections"][0]["_id"] == "6a0002000000000000000003"
    assert "id" not in stranger[0]


def test_workflow_from_args_matches_name_and_engine(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    params = {"name": "penguin_species_analysis", "engine": "python"}

    response = client.get(f"{API}/workflows/get/from_args", params=params, headers=users["owner"])
    by_id = client.get(
        f"{API}/workflows/get/from_id", params={"workflow_id": PENGUINS_WORKFLOW}, headers=users["owner"]
    )

    assert response.status_code == 200
    assert response.json() == by_id.json()


def test_workflow_from_args_hides_unreadable(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    params = {"name": "penguin_species_analysis", "engine": "python"}

    stranger = client.get(f"{API}/workflows/get/from_args", params=params, headers=users["stranger"])
    anonymous = client.get(f"{API}/workflows/get/from_args", params=params)
    wrong_engine = client.get(
        f"{API}/workflows/get/from_args", params={**params, "engine": "snakemake"}, headers=users["owner"]
    )

    assert stranger.status_code == 404
    assert stranger.json()["detail"] == "workflow 'penguin_species_analysis' with engine 'python' not found"
    assert anonymous.status_code == 401
    assert wrong_engine.status_code == 404


def test_ambiguous_workflow_name_is_409(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    params = {"name": "iris_workflow", "engine": "python"}

    owner = client.get(f"{API}/workflows/get/from_args", params=params, headers=users["owner"])
    stranger = client.get(f"{API}/workflows/get/from_args", params=params, headers=users["stranger"])

    assert owner.status_code == 409
    assert "/workflows/get/from_id" in owner.json()["detail"]
    assert stranger.status_code == 200
    assert stranger.json()["_id"] == IRIS_WORKFLOW


def test_workflow_from_args_needs_engine(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    response = client.get(f"{API}/workflows/get/from_args", params={"name": "iris_workflow"}, headers=users["owner"])

    assert response.status_code == 400
    assert "engine" in response.json()["detail"]


def test_tags_are_bare_json_strings(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    workflow = client.get(f"{API}/workflows/get_tag_from_id/{PENGUINS_WORKFLOW}", headers=users["owner"])
    collection = client.get(f"{API}/datacollections/get_tag_from_id/{PHYSICAL_FEATURES}", headers=users["owner"])

    assert workflow.status_code == 200
    assert workflow.headers["content-type"].startswith("application/json")
    assert workflow.text == '"penguin_species_analysis"'
    assert collection.status_code == 200
    assert collection.headers["content-type"].startswith("application/json")
    assert collection.json() == "physical_features"


def test_tags_of_unreadable_objects_are_404(client: TestClient, users: dict[str, dict[str, str]]) -> None:
    workflow = client.get(f"{API}/workflows/get_tag_from_id/{PENGUINS_WORKFLOW}", headers=users["stranger"])
    collection = client.get(f"{API}/datacollections/get_tag_from_id/{PHYSICAL_FEATURES}", headers=users["stranger"])
    bad_id = client.get(f"{API}/datacollections/get_tag_from_id/not-an-id", headers=users["admin"])

    assert workflow.status_code == 404
    assert collection.status_code == 404
    assert bad_id.status_code == 404
    assert bad_id.json()["detail"] == "data collection 'not-an-id' not found"
