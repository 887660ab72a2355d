"""Sign-in, bearer tokens and the one error shape of 401 responses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from litestar.testing import TestClient

from tests.api.conftest import ADMIN_PASSWORD, API

ERROR_KEYS = {"status_code", "detail"}


def test_request_without_token_gets_401(client: TestClient) -> None:
    response = client.get(f"{API}/projects/get/all")
    assert response.status_code == 401
    assert set(response.json()) == ERROR_KEYS
    assert response.json()["status_code"] == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_every_protected_route_rejects_missing_token(client: TestClient) -> None:
    paths = [
        "/auth/me",
        "/projects/get/all",
        "/projects/get/from_id?project_id=6a0001000000000000000001",
        "/projects/get/from_name/x",
        "/workflows/get/from_id?workflow_id=6a0001000000000000000002",
        "/runs/list/6a0001000000000000000002",
        "/runs/get/6a0001000000000000000002",
        "/files/list/6a0001000000000000000003",
        "/deltatables/get/6a0001000000000000000003",
        "/deltatables/specs/6a0001000000000000000003",
        "/deltatables/shape/6a0001000000000000000003",
        "/deltatables/preview/6a0001000000000000000003",
        "/datacollections/specs/6a0001000000000000000003",
        "/scans",
    ]
    for path in paths:
        response = client.get(API + path)
        assert response.status_code == 401, path
        assert set(response.json()) == ERROR_KEYS, path


def test_scan_trigger_rejects_missing_token(client: TestClient) -> None:
    response = client.post(f"{API}/projects/6a0001000000000000000001/scan")
    assert response.status_code == 401


def test_wrong_password_gets_401(client: TestClient) -> None:
    response = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": "wrong"})
    assert response.status_code == 401
    assert response.json() == {"status_code": 401, "detail": "invalid credentials"}


def test_unknown_user_gets_same_401_as_wrong_password(client: TestClient) -> None:
    response = client.post(f"{API}/auth/login", data={"username": "nobody@example.org", "password": "wrong"})
    assert response.status_code == 401
    assert response.json()["detail"] == "invalid credentials"


def test_login_with_json_body_is_rejected(client: TestClient) -> None:
    response = client.post(f"{API}/auth/login", json={"username": "admin@example.org", "password": ADMIN_PASSWORD})
    assert 400 <= response.status_code < 500
    assert set(response.json()) == ERROR_KEYS


def test_login_returns_signed_token(client: TestClient) -> None:
    response = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": ADMIN_PASSWORD})
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "bearer"
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "EdDSA"
    assert len(body["_id"]) == 24


def test_me_contains_no_password_hash(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/auth/me", headers=admin)
    assert response.status_code == 200
    assert response.json()["email"] == "admin@example.org"
    assert response.json()["is_admin"] is True
    assert "password" not in response.json()
    assert "argon2" not in response.text


def test_non_bearer_scheme_gets_401(client: TestClient) -> None:
    response = client.get(f"{API}/auth/me", headers={"Authorization": "Basic YWRtaW46eA=="})
    assert response.status_code == 401


def test_garbage_token_gets_401(client: TestClient) -> None:
    response = client.get(f"{API}/auth/me", headers={"Authorization": "Bearer not-a-jwt"})
    assert response.status_code == 401
    assert set(response.json()) == ERROR_KEYS


def _claims(client: TestClient, admin: dict[str, str], **changes: object) -> dict[str, object]:
    user_id = client.get(f"{API}/auth/me", headers=admin).json()["id"]
    token = admin["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(sub=user_id)
    claims.update(changes)
    return claims


def _service_key(example_root: Path) -> Ed25519PrivateKey:
    key = load_pem_private_key((example_root / "auth.key").read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


def test_token_signed_by_another_key_gets_401(client: TestClient, admin: dict[str, str]) -> None:
    forged = jwt.encode(_claims(client, admin), Ed25519PrivateKey.generate(), algorithm="EdDSA")
    response = client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_unsigned_token_gets_401(client: TestClient, admin: dict[str, str]) -> None:
    unsigned = jwt.encode(_claims(client, admin), key=None, algorithm="none")  # type: ignore[arg-type]
    response = client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {unsigned}"})
    assert response.status_code == 401


def test_expired_token_gets_401(client: TestClient, admin: dict[str, str], example_root: Path) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    claims = _claims(client, admin, iat=past, exp=past + timedelta(minutes=5))
    expired = jwt.encode(claims, _service_key(example_root), algorithm="EdDSA")
    response = client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_token_never_issued_gets_401(client: TestClient, admin: dict[str, str], example_root: Path) -> None:
    unknown = jwt.encode(_claims(client, admin, jti="f" * 32), _service_key(example_root), algorithm="EdDSA")
    response = client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {unknown}"})
    assert response.status_code == 401


def test_token_without_expiry_gets_401(client: TestClient, admin: dict[str, str], example_root: Path) -> None:
    claims = _claims(client, admin)
    del claims["exp"]
    endless = jwt.encode(claims, _service_key(example_root), algorithm="EdDSA")
    response = client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {endless}"})
    assert response.status_code == 401


def test_public_routes_need_no_token(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "healthy"
    assert client.get(f"{API}/utils/status").json()["status"] == "online"
    assert client.get("/docs/openapi.json").status_code == 200


def test_login_ignores_email_case(client: TestClient) -> None:
    response = client.post(f"{API}/auth/login", data={"username": "ADMIN@Example.ORG", "password": ADMIN_PASSWORD})
    assert response.status_code == 200
