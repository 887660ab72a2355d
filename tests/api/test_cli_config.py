"""The Depictio CLI config that generate_agent_config builds, and its check by validate_cli_config.

The rules below are those of the CLIConfig model of the Depictio CLI 1.19.2
(depictio/models/models/cli.py): the CLI rejects a config that breaks any of them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from litestar.testing import TestClient

from tests.api.conftest import API, add_user, bearer

ERROR_KEYS = {"status_code", "detail"}
BASE_URL = re.compile(r"^https?://[^/\s]+(?::\d+)?$")
OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CONFIG_KEYS = {"api_base_url", "user", "s3_storage", "instance_label", "remote_storage_options"}
USER_KEYS = {
    "id",
    "email",
    "is_admin",
    "is_anonymous",
    "is_temporary",
    "expiration_time",
    "description",
    "flexible_metadata",
    "hash",
    "token",
}
TOKEN_KEYS = {
    "id",
    "user_id",
    "access_token",
    "refresh_token",
    "token_type",
    "token_lifetime",
    "expire_datetime",
    "refresh_expire_datetime",
    "name",
    "created_at",
    "logged_in",
    "description",
    "flexible_metadata",
    "hash",
}
REQUIRED_TOKEN_KEYS = {"user_id", "access_token", "refresh_token", "expire_datetime", "refresh_expire_datetime"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _generate(client: TestClient, headers: dict[str, str], body: Any = None) -> dict[str, Any]:
    response = client.post(f"{API}/auth/generate_agent_config", headers=headers, json=body)
    assert response.status_code == 200, response.text
    config: dict[str, Any] = response.json()
    return config


def _validate(client: TestClient, config: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    token = token or config["user"]["token"]["access_token"]
    response = client.post(
        f"{API}/cli/validate_cli_config",
        json=config,
        headers={**bearer(token), "X-Depictio-CLI-Version": "1.19.2"},
    )
    assert response.status_code == 200, response.text
    verdict: dict[str, Any] = response.json()
    return verdict


def test_generated_config_follows_cli_rules(client: TestClient) -> None:
    headers = add_user(client, "cli-user@example.org", "cli-user-password")
    user_id = client.get(f"{API}/auth/me", headers=headers).json()["id"]

    config = _generate(client, headers)

    assert set(config) <= CONFIG_KEYS
    assert BASE_URL.match(config["api_base_url"])
    assert config["api_base_url"] == "http://testserver.local"
    assert config["s3_storage"] == {}
    assert config["instance_label"] is None

    user = config["user"]
    assert set(user) <= USER_KEYS
    assert OBJECT_ID.match(user["id"])
    assert user["id"] == user_id
    assert EMAIL.match(user["email"])
    assert user["email"] == "cli-user@example.org"
    assert user["is_admin"] is False

    token = user["token"]
    assert set(token) <= TOKEN_KEYS
    assert set(token) >= REQUIRED_TOKEN_KEYS
    assert token["user_id"] == user_id
    assert OBJECT_ID.match(token["id"])
    assert token["token_type"] == "bearer"
    assert token["token_lifetime"] == "long-lived"
    for field in ("expire_datetime", "refresh_expire_datetime", "created_at"):
        datetime.strptime(token[field], TIME_FORMAT)
    assert token["access_token"].count(".") == 2
    assert token["refresh_token"].count(".") == 2


def test_generated_config_passes_validation(client: TestClient) -> None:
    headers = add_user(client, "validated@example.org", "validated-password")
    config = _generate(client, headers)

    verdict = _validate(client, config)

    assert verdict["success"] is True
    assert verdict["is_admin"] is False
    assert verdict["user_id"] == config["user"]["id"]
    assert verdict["email"] == "validated@example.org"


def test_generated_config_for_admin_says_admin(client: TestClient, admin: dict[str, str]) -> None:
    verdict = _validate(client, _generate(client, admin))

    assert verdict["success"] is True
    assert verdict["is_admin"] is True


def test_generated_token_is_listed_long_lived(client: TestClient) -> None:
    headers = add_user(client, "listed-cli@example.org", "listed-cli-password")
    config = _generate(client, headers)

    listed = client.get(f"{API}/auth/list_tokens", params={"token_lifetime": "long-lived"}, headers=headers).json()

    assert [token["_id"] for token in listed] == [config["user"]["token"]["id"]]


def test_generate_reuses_posted_own_token(client: TestClient) -> None:
    headers = add_user(client, "reuser@example.org", "reuser-password")
    created = client.post(f"{API}/auth/me/tokens", json={"name": "for the CLI"}, headers=headers).json()

    config = _generate(
        client, headers, {"access_token": created["access_token"], "refresh_token": created["refresh_token"]}
    )

    assert config["user"]["token"]["id"] == created["_id"]
    assert config["user"]["token"]["access_token"] == created["access_token"]
    assert config["user"]["token"]["name"] == "for the CLI"
    assert _validate(client, config)["success"] is True


def test_generate_rejects_token_of_other_user(client: TestClient, admin: dict[str, str]) -> None:
    headers = add_user(client, "thief@example.org", "thief-password")
    created = client.post(f"{API}/auth/me/tokens", json={"name": "admin's CLI"}, headers=admin).json()

    response = client.post(
        f"{API}/auth/generate_agent_config",
        json={"access_token": created["access_token"], "refresh_token": created["refresh_token"]},
        headers=headers,
    )

    assert response.status_code == 403
    assert set(response.json()) == ERROR_KEYS
    assert created["access_token"] not in response.text


def test_generate_rejects_short_lived_token(client: TestClient) -> None:
    add_user(client, "session@example.org", "session-password")
    signed_in = client.post(
        f"{API}/auth/login", data={"username": "session@example.org", "password": "session-password"}
    ).json()

    response = client.post(
        f"{API}/auth/generate_agent_config",
        json={"access_token": signed_in["access_token"], "refresh_token": signed_in["refresh_token"]},
        headers=bearer(signed_in["access_token"]),
    )

    assert response.status_code == 400
    assert "short-lived" in response.json()["detail"]


def test_generate_needs_sign_in(client: TestClient) -> None:
    response = client.post(f"{API}/auth/generate_agent_config")

    assert response.status_code == 401


def test_validation_rejects_other_users_config(client: TestClient, admin: dict[str, str]) -> None:
    headers = add_user(client, "mismatch@example.org", "mismatch-password")
    config = _generate(client, admin)

    verdict = _validate(client, config, token=headers["Authorization"].removeprefix("Bearer "))

    assert verdict["success"] is False
    assert verdict["user_id"] is None
    assert verdict["is_admin"] is False


def test_validation_rejects_wrong_email(client: TestClient) -> None:
    headers = add_user(client, "owner@example.org", "owner-password")
    config = _generate(client, headers)
    config["user"]["email"] = "someone-else@example.org"

    verdict = _validate(client, config)

    assert verdict["success"] is False
    assert "someone-else@example.org" in verdict["message"]


def test_validation_rejects_revoked_config_token(client: TestClient) -> None:
    headers = add_user(client, "revoker@example.org", "revoker-password")
    config = _generate(client, headers)
    client.delete(f"{API}/auth/me/tokens/{config['user']['token']['id']}", headers=headers)

    verdict = _validate(client, config, token=headers["Authorization"].removeprefix("Bearer "))

    assert verdict["success"] is False
    assert verdict["message"].startswith("Token expired or not found")


def test_validation_needs_sign_in(client: TestClient, admin: dict[str, str]) -> None:
    config = _generate(client, admin)

    response = client.post(f"{API}/cli/validate_cli_config", json=config)

    assert response.status_code == 401
    assert set(response.json()) == ERROR_KEYS


def test_validation_accepts_minimal_cli_file(client: TestClient) -> None:
    """The ten-line CLI.yaml that the Depictio CLI accepts: only the required fields."""
    headers = add_user(client, "minimal@example.org", "minimal-password")
    token = _generate(client, headers)["user"]["token"]
    config = {
        "api_base_url": "http://127.0.0.1:8058",
        "user": {
            "id": token["user_id"],
            "email": "minimal@example.org",
            "token": {key: token[key] for key in REQUIRED_TOKEN_KEYS},
        },
        "s3_storage": {},
    }

    verdict = _validate(client, config)

    assert verdict["success"] is True


def test_validation_rejects_malformed_body(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(f"{API}/cli/validate_cli_config", json={"api_base_url": "x"}, headers=admin)

    assert response.status_code == 400
    assert set(response.json()) == ERROR_KEYS
