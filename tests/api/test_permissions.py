"""Project roles over the API: what each role lists and reads, and changes to permissions and visibility.

Penguins is private with one owner, one editor and one viewer in its YAML file; iris is
public. Changes made over the API are checked across a restart of the app on the same
catalog, with the YAML file unchanged and with it edited.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api import create_app
from catalog import user_id_for
from config import load_projects, load_settings
from tests.api.conftest import API, add_user, login
from tests.examples import copy_bundled_examples, write_settings

PASSWORD = "permissions-test-password"
OWNER = "owner@example.org"
EDITOR = "editor@example.org"
VIEWER = "viewer@example.org"
STRANGER = "stranger@example.org"
PENGUINS = "6a0001000000000000000001"
PHYSICAL_FEATURES = "6a0001000000000000000003"
IRIS = "6a0002000000000000000001"
# The client of the shared app and the Authorization headers of its users by e-mail.
Shared = tuple[TestClient, dict[str, dict[str, str]]]
ROLES_YAML = f"permissions:\n  owners: [{OWNER}]\n  editors: [{EDITOR}]\n  viewers: [{VIEWER}]"


def _write_projects(root: Path) -> Path:
    """Copy the bundled examples into `root`, make penguins private with roles; return its YAML path."""
    penguins, _ = copy_bundled_examples(root)
    penguins.write_text(penguins.read_text().replace("is_public: true", f"is_public: false\n{ROLES_YAML}"))
    write_settings(root, [penguins, root / "bundled" / "iris" / "project.yaml"])
    return penguins


@contextmanager
def _serve(root: Path, public_read: bool = False, scan: bool = False) -> Iterator[TestClient]:
    """Run the app over the settings in `root`; a second call is a restart on the same catalog.

    Without `scan`, the app starts without scanning: most tests here read project and
    collection documents, never tables.
    """
    environ = {
        "DEPICTIO_AUTH_PUBLIC_READ": str(public_read).lower(),
        "DEPICTIO_INGEST_SCAN_ON_START": str(scan).lower(),
    }
    settings = load_settings(str(root / "depictio.toml"), environ=environ)
    app = create_app(settings, load_projects(settings.projects), admin_password=PASSWORD)
    with TestClient(app) as client:
        yield client


def _add_users(client: TestClient) -> dict[str, dict[str, str]]:
    return {email: add_user(client, email, PASSWORD) for email in (OWNER, EDITOR, VIEWER, STRANGER)}


def _set_permissions(client: TestClient, headers: dict[str, str], permissions: dict[str, Any]) -> Any:
    return client.post(
        f"{API}/projects/update_project_permissions",
        json={"project_id": PENGUINS, "permissions": permissions},
        headers=headers,
    )


def _reads_penguins(client: TestClient, headers: dict[str, str]) -> int:
    """Return the status of reading a data collection of penguins, a route under the project."""
    status: int = client.get(f"{API}/datacollections/specs/{PHYSICAL_FEATURES}", headers=headers).status_code
    return status


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    """An app that no test changes, with public_read on."""
    root = tmp_path_factory.mktemp("roles")
    _write_projects(root)
    with _serve(root, public_read=True, scan=True) as client:
        yield client, _add_users(client)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    _write_projects(tmp_path)
    return tmp_path


def test_stranger_list_omits_private_project(shared: Shared) -> None:
    client, users = shared

    ids = [project["id"] for project in client.get(f"{API}/projects/get/all", headers=users[STRANGER]).json()]

    assert PENGUINS not in ids
    assert IRIS in ids


def test_viewer_list_includes_private_project(shared: Shared) -> None:
    client, users = shared

    ids = [project["id"] for project in client.get(f"{API}/projects/get/all", headers=users[VIEWER]).json()]

    assert PENGUINS in ids


def test_anonymous_list_has_only_public_projects(shared: Shared) -> None:
    client, _ = shared

    ids = [project["id"] for project in client.get(f"{API}/projects/get/all").json()]

    assert ids == [IRIS]


def test_stranger_scans_omit_private_project(shared: Shared) -> None:
    client, users = shared

    page = client.get(f"{API}/scans", headers=users[STRANGER]).json()

    assert {scan["project_id"] for scan in page["scans"]} == {IRIS}
    assert page["total"] == 1


def test_hidden_object_gets_missing_object_404(shared: Shared) -> None:
    client, users = shared

    hidden = client.get(f"{API}/files/list/{PHYSICAL_FEATURES}", headers=users[STRANGER])
    missing = client.get(f"{API}/files/list/{'f' * 24}", headers=users[STRANGER])

    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"] == f"data collection {PHYSICAL_FEATURES!r} not found"
    assert missing.json()["detail"] == f"data collection {'f' * 24!r} not found"


def test_viewer_write_gets_403_with_reason(shared: Shared) -> None:
    client, users = shared

    response = client.post(f"{API}/projects/{PENGUINS}/scan", headers=users[VIEWER])

    assert response.status_code == 403
    assert "editor or owner role" in response.json()["detail"]


def test_anonymous_private_read_gets_401(shared: Shared) -> None:
    client, _ = shared

    response = client.get(f"{API}/projects/get/from_id", params={"project_id": PENGUINS})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_project_lists_roles_by_user(shared: Shared) -> None:
    client, users = shared

    project = client.get(f"{API}/projects/get/from_id", params={"project_id": PENGUINS}, headers=users[VIEWER]).json()

    assert [member["email"] for member in project["permissions"]["owners"]] == [OWNER]
    assert [member["email"] for member in project["permissions"]["editors"]] == [EDITOR]
    assert [member["email"] for member in project["permissions"]["viewers"]] == [VIEWER]


def test_owner_adds_viewer(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)

        response = _set_permissions(client, users[OWNER], {"owners": [OWNER], "viewers": [VIEWER, STRANGER]})

        assert response.status_code == 200, response.text
        assert response.json()["success"] is True
        assert _reads_penguins(client, users[STRANGER]) == 200
        assert client.post(f"{API}/projects/{PENGUINS}/scan", headers=users[STRANGER]).status_code == 403


def test_removed_member_gets_404(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)

        response = _set_permissions(client, users[OWNER], {"owners": [OWNER], "editors": [EDITOR]})

        assert response.status_code == 200, response.text
        assert _reads_penguins(client, users[VIEWER]) == 404
        assert _reads_penguins(client, users[EDITOR]) == 200


def test_editor_promoted_to_owner_manages(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)
        before = _set_permissions(client, users[EDITOR], {"owners": [EDITOR]})

        _set_permissions(client, users[OWNER], {"owners": [OWNER, EDITOR]})
        after = _set_permissions(client, users[EDITOR], {"owners": [EDITOR]})

        assert before.status_code == 403
        assert after.status_code == 200, after.text
        assert _reads_penguins(client, users[OWNER]) == 404


def test_user_documents_and_ids_are_accepted(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)
        permissions = {
            "owners": [{"id": user_id_for(OWNER), "email": OWNER, "is_admin": False}],
            "editors": [{"_id": user_id_for(EDITOR)}],
            "viewers": [user_id_for(VIEWER), {"email": STRANGER}],
        }

        response = _set_permissions(client, users[OWNER], permissions)
        project = client.get(f"{API}/projects/get/from_id", params={"project_id": PENGUINS}, headers=users[OWNER])

        assert response.status_code == 200, response.text
        assert [member["email"] for member in project.json()["permissions"]["viewers"]] == sorted(
            [VIEWER, STRANGER], key=user_id_for
        )


@pytest.mark.parametrize(
    ("permissions", "detail"),
    [
        ({"owners": [OWNER, "nobody@example.org"]}, "no user has the e-mail address 'nobody@example.org'"),
        ({"owners": [OWNER], "viewers": ["f" * 24]}, f"no user has the user id {'f' * 24!r}"),
        ({"owners": [OWNER], "viewers": [OWNER]}, "listed in owners and in viewers"),
        ({"owners": [], "viewers": [VIEWER]}, "at least one owner"),
        ({"editors": [EDITOR]}, "at least one owner"),
        ({"owners": ["*"]}, "may appear only in viewers"),
        ({"owners": [OWNER], "group_viewers": [{"id": "x", "name": "lab"}]}, "no groups"),
        ({"owners": [{"id": user_id_for(OWNER), "email": VIEWER}]}, "name different users"),
        ({"owners": [{"is_admin": True}]}, "neither an id nor an email"),
        ({"owners": [OWNER], "viewers": [VIEWER] * 1000}, "list at most 1000 users"),
    ],
    ids=[
        "unknown e-mail",
        "unknown id",
        "two roles",
        "empty owners",
        "no owners",
        "star owner",
        "groups",
        "id mismatch",
        "empty entry",
        "too many entries",
    ],
)
def test_invalid_permissions_get_400(root: Path, permissions: dict[str, Any], detail: str) -> None:
    with _serve(root) as client:
        users = _add_users(client)

        response = _set_permissions(client, users[OWNER], permissions)
        unchanged = _reads_penguins(client, users[VIEWER])

    assert response.status_code == 400
    assert set(response.json()) == {"status_code", "detail"}
    assert detail in response.json()["detail"]
    assert unchanged == 200


def test_unknown_role_key_gets_400(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)

        response = _set_permissions(client, users[OWNER], {"owners": [OWNER], "admins": [STRANGER]})

    assert response.status_code == 400
    assert "admins" in response.json()["detail"]


def test_star_viewer_admits_signed_in_users_only(root: Path) -> None:
    with _serve(root, public_read=True) as client:
        users = _add_users(client)

        response = _set_permissions(client, users[OWNER], {"owners": [OWNER], "viewers": ["*"]})

        assert response.status_code == 200, response.text
        assert _reads_penguins(client, users[STRANGER]) == 200
        assert _reads_penguins(client, {}) == 401


def test_permissions_survive_restart(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)
        _set_permissions(client, users[OWNER], {"owners": [OWNER], "viewers": [STRANGER]})

    with _serve(root) as client:
        stranger = login(client, STRANGER, PASSWORD)
        viewer = login(client, VIEWER, PASSWORD)

        assert _reads_penguins(client, stranger) == 200
        assert _reads_penguins(client, viewer) == 404


def test_unrelated_yaml_edit_keeps_api_permissions(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)
        _set_permissions(client, users[OWNER], {"owners": [OWNER], "viewers": [STRANGER]})
    penguins = root / "bundled" / "penguins" / "project.yaml"
    penguins.write_text(penguins.read_text().replace("Body measurements and", "Measurements and"))

    with _serve(root) as client:
        assert _reads_penguins(client, login(client, STRANGER, PASSWORD)) == 200


def test_yaml_permissions_edit_replaces_api_permissions(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)
        _set_permissions(client, users[OWNER], {"owners": [OWNER], "viewers": [STRANGER]})
    penguins = root / "bundled" / "penguins" / "project.yaml"
    penguins.write_text(penguins.read_text().replace(f"viewers: [{VIEWER}]", f"viewers: [{VIEWER}, {EDITOR}]"))

    with _serve(root) as client:
        stranger = login(client, STRANGER, PASSWORD)
        viewer = login(client, VIEWER, PASSWORD)

        assert _reads_penguins(client, stranger) == 404
        assert _reads_penguins(client, viewer) == 200


def test_yaml_edit_back_and_forth_drops_api_permissions(root: Path) -> None:
    penguins = root / "bundled" / "penguins" / "project.yaml"
    original = penguins.read_text()
    with _serve(root) as client:
        users = _add_users(client)
        _set_permissions(client, users[OWNER], {"owners": [OWNER], "viewers": [STRANGER]})
    penguins.write_text(original.replace(f"viewers: [{VIEWER}]", "viewers: []"))
    with _serve(root):
        pass
    penguins.write_text(original)

    with _serve(root) as client:
        assert _reads_penguins(client, login(client, STRANGER, PASSWORD)) == 404
        assert _reads_penguins(client, login(client, VIEWER, PASSWORD)) == 200


def test_toggle_makes_project_public(root: Path) -> None:
    with _serve(root, public_read=True) as client:
        users = _add_users(client)

        response = client.post(
            f"{API}/projects/toggle_public_private/{PENGUINS}", params={"is_public": "True"}, headers=users[OWNER]
        )

        assert response.status_code == 200, response.text
        assert response.json()["is_public"] is True
        assert _reads_penguins(client, users[STRANGER]) == 200
        assert _reads_penguins(client, {}) == 200


def test_toggle_back_to_private_hides_project(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)
        admin = login(client, "admin@example.org", PASSWORD)

        response = client.post(
            f"{API}/projects/toggle_public_private/{IRIS}", params={"is_public": "false"}, headers=admin
        )
        ids = [project["id"] for project in client.get(f"{API}/projects/get/all", headers=users[STRANGER]).json()]

    assert response.status_code == 200, response.text
    assert IRIS not in ids


@pytest.mark.parametrize("value", ["maybe", ""])
def test_toggle_rejects_other_values(root: Path, value: str) -> None:
    with _serve(root) as client:
        users = _add_users(client)

        response = client.post(
            f"{API}/projects/toggle_public_private/{PENGUINS}", params={"is_public": value}, headers=users[OWNER]
        )

    assert response.status_code == 400
    assert set(response.json()) == {"status_code", "detail"}


def test_toggle_needs_is_public(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)

        response = client.post(f"{API}/projects/toggle_public_private/{PENGUINS}", headers=users[OWNER])

    assert response.status_code == 400
    assert "is_public" in response.json()["detail"]


def test_visibility_survives_restart(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)
        client.post(
            f"{API}/projects/toggle_public_private/{PENGUINS}", params={"is_public": "true"}, headers=users[OWNER]
        )

    with _serve(root) as client:
        assert _reads_penguins(client, login(client, STRANGER, PASSWORD)) == 200


def test_yaml_is_public_edit_replaces_api_visibility(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)
        client.post(f"{API}/projects/toggle_public_private/{IRIS}", params={"is_public": "false"}, headers=users[OWNER])
    iris = root / "bundled" / "iris" / "project.yaml"
    iris.write_text(iris.read_text().replace("is_public: true", "is_public: false"))
    with _serve(root):
        pass
    iris.write_text(iris.read_text().replace("is_public: false", "is_public: true"))

    with _serve(root) as client:
        ids = [
            project["id"]
            for project in client.get(f"{API}/projects/get/all", headers=login(client, STRANGER, PASSWORD)).json()
        ]

    assert IRIS in ids


def test_visibility_edit_keeps_api_permissions(root: Path) -> None:
    with _serve(root) as client:
        users = _add_users(client)
        _set_permissions(client, users[OWNER], {"owners": [OWNER], "viewers": [STRANGER]})
    penguins = root / "bundled" / "penguins" / "project.yaml"
    penguins.write_text(penguins.read_text().replace("is_public: false", "is_public: true"))

    with _serve(root) as client:
        project = client.get(
            f"{API}/projects/get/from_id", params={"project_id": PENGUINS}, headers=login(client, OWNER, PASSWORD)
        ).json()

    assert project["is_public"] is True
    assert [member["email"] for member in project["permissions"]["viewers"]] == [STRANGER]
