"""Registration, password changes and the administrators' user routes."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from api import create_app
from config import load_projects, load_settings
from tests.api.conftest import ADMIN_PASSWORD, API, add_user, app_without_projects, bearer
from tests.examples import copy_bundled_examples, write_settings

ERROR_KEYS = {"status_code", "detail"}
OPEN_REGISTRATION = {"DEPICTIO_AUTH_ALLOW_REGISTRATION": "true"}


def _sign_in(client: TestClient, email: str, password: str) -> dict[str, str]:
    response = client.post(f"{API}/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def _user_id(client: TestClient, headers: dict[str, str]) -> str:
    user_id: str = client.get(f"{API}/auth/me", headers=headers).json()["id"]
    return user_id


# Registration


def test_registration_disabled_is_403(client: TestClient) -> None:
    response = client.post(f"{API}/auth/register", json={"email": "new@example.org", "password": "new-password"})

    assert response.status_code == 403
    assert set(response.json()) == ERROR_KEYS
    assert "registration is disabled" in response.json()["detail"]


def test_registration_creates_user(tmp_path: Path) -> None:
    with app_without_projects(tmp_path, OPEN_REGISTRATION) as client:
        response = client.post(f"{API}/auth/register", json={"email": "new@example.org", "password": "new-password"})
        signed_in = client.post(f"{API}/auth/login", data={"username": "new@example.org", "password": "new-password"})

    assert response.status_code == 200
    assert response.json()["success"] is True
    assert response.json()["user"]["email"] == "new@example.org"
    assert response.json()["user"]["is_admin"] is False
    assert "password" not in response.json()["user"]
    assert "argon2" not in response.text
    assert signed_in.status_code == 200


def test_registration_rejects_bad_input(tmp_path: Path) -> None:
    cases = [
        ({"email": "not-an-address", "password": "long-enough"}, "e-mail"),
        ({"email": "two@@example.org", "password": "long-enough"}, "e-mail"),
        ({"email": "space in@example.org", "password": "long-enough"}, "e-mail"),
        ({"email": "short@example.org", "password": "seven77"}, "at least 8"),
        ({"email": "huge@example.org", "password": "x" * 1025}, "at most 1024"),
        ({"email": "missing@example.org"}, "password"),
    ]
    with app_without_projects(tmp_path, OPEN_REGISTRATION) as client:
        for body, expected in cases:
            response = client.post(f"{API}/auth/register", json=body)
            assert response.status_code == 400, body
            assert set(response.json()) == ERROR_KEYS, body
            assert expected in response.json()["detail"], body


def test_registration_rejects_duplicate_email(tmp_path: Path) -> None:
    with app_without_projects(tmp_path, OPEN_REGISTRATION) as client:
        client.post(f"{API}/auth/register", json={"email": "twice@example.org", "password": "first-password"})

        response = client.post(
            f"{API}/auth/register", json={"email": "TWICE@example.org", "password": "second-password"}
        )

    assert response.status_code == 409
    assert set(response.json()) == ERROR_KEYS


def test_registration_cannot_make_admin(tmp_path: Path) -> None:
    with app_without_projects(tmp_path, OPEN_REGISTRATION) as client:
        response = client.post(
            f"{API}/auth/register",
            json={"email": "climber@example.org", "password": "climber-password", "is_admin": True},
        )

    assert response.status_code == 200
    assert response.json()["user"]["is_admin"] is False


def test_registration_folds_unicode_case(tmp_path: Path) -> None:
    # Python and DuckDB fold the dotted capital I differently; both spellings are one account.
    with app_without_projects(tmp_path, OPEN_REGISTRATION) as client:
        first = client.post(f"{API}/auth/register", json={"email": "\u0130zz@example.org", "password": "first-pass"})
        second = client.post(f"{API}/auth/register", json={"email": "i\u0307zz@example.org", "password": "second-pass"})

    assert first.status_code == 200
    assert second.status_code == 409


def test_registration_rejects_hidden_characters(tmp_path: Path) -> None:
    with app_without_projects(tmp_path, OPEN_REGISTRATION) as client:
        for email in ("nul\x00@example.org", "zero\u200bwidth@example.org", "esc\x1b@example.org"):
            response = client.post(f"{API}/auth/register", json={"email": email, "password": "long-enough"})
            assert response.status_code == 400, email
            assert "invisible characters" in response.json()["detail"], email


def test_registration_refuses_administrator_address(tmp_path: Path) -> None:
    with app_without_projects(tmp_path, OPEN_REGISTRATION) as client:
        response = client.post(f"{API}/auth/register", json={"email": "Admin@Example.org", "password": "long-enough"})

    # Anyone could otherwise take the address, and with it the projects it is shown to own.
    assert response.status_code == 403
    assert "depictiod users add" in response.json()["detail"]


def test_registration_refuses_address_with_role(tmp_path: Path) -> None:
    settings_path = write_settings(tmp_path, copy_bundled_examples(tmp_path))
    penguins = tmp_path / "bundled" / "penguins" / "project.yaml"
    roles = "permissions:\n  owners: [boss@example.org]\n  viewers: [reader@example.org]"
    penguins.write_text(penguins.read_text().replace("is_public: true", f"is_public: false\n{roles}"))
    settings = load_settings(str(settings_path), environ=OPEN_REGISTRATION)
    app = create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)
    with TestClient(app) as client:
        named = client.post(f"{API}/auth/register", json={"email": "reader@example.org", "password": "long-enough"})
        other = client.post(f"{API}/auth/register", json={"email": "other@example.org", "password": "long-enough"})

    # The address is not verified, so its role must not go to the first person who registers it.
    assert named.status_code == 403
    assert other.status_code == 200


# Password changes


def test_edit_password_revokes_other_tokens(client: TestClient) -> None:
    current = add_user(client, "changer@example.org", "changer-password")
    other_session = _sign_in(client, "changer@example.org", "changer-password")
    script = client.post(f"{API}/auth/me/tokens", json={"name": "script"}, headers=current).json()

    response = client.post(
        f"{API}/auth/edit_password",
        json={"old_password": "changer-password", "new_password": "changed-password"},
        headers=current,
    )

    assert response.status_code == 200
    assert response.json()["success"] is True
    assert client.get(f"{API}/auth/me", headers=current).status_code == 200
    assert client.get(f"{API}/auth/me", headers=bearer(other_session["access_token"])).status_code == 401
    assert client.get(f"{API}/auth/me", headers=bearer(script["access_token"])).status_code == 401
    refreshed = client.post(f"{API}/auth/refresh", json={"refresh_token": other_session["refresh_token"]})
    assert refreshed.status_code == 401


def test_edit_password_changes_sign_in(client: TestClient) -> None:
    headers = add_user(client, "rotator@example.org", "rotator-password")

    client.post(
        f"{API}/auth/edit_password",
        json={"old_password": "rotator-password", "new_password": "rotated-password"},
        headers=headers,
    )

    old = client.post(f"{API}/auth/login", data={"username": "rotator@example.org", "password": "rotator-password"})
    new = client.post(f"{API}/auth/login", data={"username": "rotator@example.org", "password": "rotated-password"})
    assert old.status_code == 401
    assert new.status_code == 200


def test_edit_password_wrong_old_is_400(client: TestClient) -> None:
    headers = add_user(client, "forgetful@example.org", "forgetful-password")

    response = client.post(
        f"{API}/auth/edit_password",
        json={"old_password": "wrong", "new_password": "whatever-password"},
        headers=headers,
    )

    assert response.status_code == 400
    assert set(response.json()) == ERROR_KEYS
    assert "old password" in response.json()["detail"]


def test_edit_password_short_new_is_400(client: TestClient) -> None:
    headers = add_user(client, "brief@example.org", "brief-password")

    response = client.post(
        f"{API}/auth/edit_password", json={"old_password": "brief-password", "new_password": "short"}, headers=headers
    )

    assert response.status_code == 400
    assert "at least 8" in response.json()["detail"]


def test_edit_password_needs_sign_in(client: TestClient) -> None:
    response = client.post(f"{API}/auth/edit_password", json={"old_password": "a", "new_password": "b"})

    assert response.status_code == 401


# Administrators' routes


def test_list_users_for_admin(client: TestClient, admin: dict[str, str]) -> None:
    add_user(client, "listed@example.org", "listed-password")

    response = client.get(f"{API}/auth/list", headers=admin)

    assert response.status_code == 200
    emails = {user["email"] for user in response.json()}
    assert {"admin@example.org", "listed@example.org"} <= emails
    for user in response.json():
        assert "password" not in user
        assert "password_hash" not in user
    assert "argon2" not in response.text


def test_admin_routes_reject_non_admin(client: TestClient, admin: dict[str, str]) -> None:
    headers = add_user(client, "plain@example.org", "plain-password")
    admin_id = _user_id(client, admin)
    requests = [
        ("GET", f"{API}/auth/list"),
        ("DELETE", f"{API}/auth/delete/{admin_id}"),
        ("POST", f"{API}/auth/turn_sysadmin/{_user_id(client, headers)}/true"),
    ]
    for method, url in requests:
        response = client.request(method, url, headers=headers)
        assert response.status_code == 403, url
        assert set(response.json()) == ERROR_KEYS, url
    assert client.get(f"{API}/auth/me", headers=headers).json()["is_admin"] is False


def test_admin_routes_reject_anonymous(client: TestClient) -> None:
    for method, url in (
        ("GET", f"{API}/auth/list"),
        ("DELETE", f"{API}/auth/delete/ffffffffffffffffffffffff"),
        ("POST", f"{API}/auth/turn_sysadmin/ffffffffffffffffffffffff/true"),
    ):
        response = client.request(method, url)
        assert response.status_code == 401, url


def test_delete_unknown_user_is_404(client: TestClient, admin: dict[str, str]) -> None:
    response = client.delete(f"{API}/auth/delete/ffffffffffffffffffffffff", headers=admin)

    assert response.status_code == 404
    assert set(response.json()) == ERROR_KEYS


def test_turn_sysadmin_grants_and_withdraws(client: TestClient, admin: dict[str, str]) -> None:
    headers = add_user(client, "promoted@example.org", "promoted-password")
    user_id = _user_id(client, headers)

    granted = client.post(f"{API}/auth/turn_sysadmin/{user_id}/true", headers=admin)
    is_admin_after_grant = client.get(f"{API}/auth/me", headers=headers).json()["is_admin"]
    repeated = client.post(f"{API}/auth/turn_sysadmin/{user_id}/true", headers=admin)
    withdrawn = client.post(f"{API}/auth/turn_sysadmin/{user_id}/false", headers=admin)

    assert granted.json() == {"success": True, "message": None}
    assert is_admin_after_grant is True
    assert repeated.json()["success"] is False
    assert withdrawn.json()["success"] is True
    assert client.get(f"{API}/auth/list", headers=headers).status_code == 403


def test_turn_sysadmin_rejects_bad_flag(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(f"{API}/auth/turn_sysadmin/{_user_id(client, admin)}/maybe", headers=admin)

    assert response.status_code == 400
    assert "true or false" in response.json()["detail"]


def test_last_admin_cannot_be_removed(tmp_path: Path) -> None:
    with app_without_projects(tmp_path) as client:
        admin = bearer(_sign_in(client, "admin@example.org", ADMIN_PASSWORD)["access_token"])
        admin_id = _user_id(client, admin)

        demoted = client.post(f"{API}/auth/turn_sysadmin/{admin_id}/false", headers=admin)
        deleted = client.delete(f"{API}/auth/delete/{admin_id}", headers=admin)
        still_admin = client.get(f"{API}/auth/me", headers=admin).json()["is_admin"]

    assert demoted.status_code == 409
    assert set(demoted.json()) == ERROR_KEYS
    assert "last administrator" in demoted.json()["detail"]
    assert deleted.status_code == 409
    assert "last administrator" in deleted.json()["detail"]
    assert still_admin is True


def test_admin_removable_when_another_exists(tmp_path: Path) -> None:
    with app_without_projects(tmp_path) as client:
        admin = bearer(_sign_in(client, "admin@example.org", ADMIN_PASSWORD)["access_token"])
        deputy = add_user(client, "deputy@example.org", "deputy-password")
        client.post(f"{API}/auth/turn_sysadmin/{_user_id(client, deputy)}/true", headers=admin)

        deleted = client.delete(f"{API}/auth/delete/{_user_id(client, admin)}", headers=deputy)
        remaining = client.get(f"{API}/auth/list", headers=deputy).json()

    assert deleted.status_code == 200
    assert [user["email"] for user in remaining] == ["deputy@example.org"]
