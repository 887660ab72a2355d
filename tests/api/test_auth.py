"""Sign-in, bearer tokens and the one error shape of 401 responses.

Every way a token can be wrong (forged, tampered, expired, revoked, reused, of a deleted
user) must end in 401 with the common error body and a Bearer challenge, never a 5xx.
A token signed before a key rotation is tested against a live server in
tests/e2e/test_token_keys.py, because the rotation needs a restart.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from litestar.testing import TestClient

from catalog import TokenRecord
from tests.api.conftest import ADMIN_PASSWORD, API, add_user, bearer

ERROR_KEYS = {"status_code", "detail"}
EXPIRED_CHALLENGE = 'Bearer error="invalid_token", error_description="The token expired"'
INVALID_CHALLENGE = 'Bearer error="invalid_token", error_description="The token is invalid"'


def assert_rejected(response: httpx.Response, expired: bool = False) -> None:
    """Check a 401 response to a rejected token: the error body and the RFC 6750 challenge."""
    assert response.status_code == 401, response.text
    assert set(response.json()) == ERROR_KEYS
    assert response.json()["status_code"] == 401
    assert response.headers["www-authenticate"] == (EXPIRED_CHALLENGE if expired else INVALID_CHALLENGE)


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
    assert_rejected(response)


def test_unsigned_token_gets_401(client: TestClient, admin: dict[str, str]) -> None:
    unsigned = jwt.encode(_claims(client, admin), key=None, algorithm="none")  # type: ignore[arg-type]
    response = client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {unsigned}"})
    assert response.status_code == 401


def test_expired_token_gets_401(client: TestClient, admin: dict[str, str], example_root: Path) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    claims = _claims(client, admin, iat=past, exp=past + timedelta(minutes=5))
    expired = jwt.encode(claims, _service_key(example_root), algorithm="EdDSA")
    response = client.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert_rejected(response, expired=True)
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
    assert_rejected(response)
    assert "exp" in response.json()["detail"]


def test_public_routes_need_no_token(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "healthy"
    assert client.get(f"{API}/utils/status").json()["status"] == "online"
    assert client.get("/docs/openapi.json").status_code == 200


def test_login_ignores_email_case(client: TestClient) -> None:
    response = client.post(f"{API}/auth/login", data={"username": "ADMIN@Example.ORG", "password": ADMIN_PASSWORD})
    assert response.status_code == 200


def test_login_returns_refresh_token(client: TestClient) -> None:
    response = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": ADMIN_PASSWORD})
    body = response.json()

    assert response.status_code == 200
    assert body["token_lifetime"] == "short-lived"
    assert jwt.get_unverified_header(body["refresh_token"])["alg"] == "EdDSA"
    assert body["refresh_token"] != body["access_token"]
    expires = datetime.strptime(body["expire_datetime"], "%Y-%m-%d %H:%M:%S")
    refresh_expires = datetime.strptime(body["refresh_expire_datetime"], "%Y-%m-%d %H:%M:%S")
    assert refresh_expires - expires == timedelta(days=7)
    created = datetime.strptime(body["created_at"], "%Y-%m-%d %H:%M:%S")
    assert expires - created == timedelta(hours=1)


def test_access_token_carries_required_claims(client: TestClient, admin: dict[str, str]) -> None:
    claims = jwt.decode(admin["Authorization"].removeprefix("Bearer "), options={"verify_signature": False})

    assert {"exp", "iat", "sub", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 3600


def test_tampered_payload_gets_401(client: TestClient, admin: dict[str, str]) -> None:
    header, payload, signature = admin["Authorization"].removeprefix("Bearer ").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 365 * 24 * 3600
    changed = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    response = client.get(f"{API}/auth/me", headers=bearer(f"{header}.{changed}.{signature}"))

    assert_rejected(response)


def test_malformed_tokens_get_401(client: TestClient) -> None:
    for token in ("abc.def", "a.b.c", "eyJhbGciOiJFZERTQSJ9..", "x" * 5000):
        response = client.get(f"{API}/auth/me", headers=bearer(token))
        assert_rejected(response)


def test_empty_bearer_value_gets_401(client: TestClient) -> None:
    response = client.get(f"{API}/auth/me", headers={"Authorization": "Bearer "})

    assert response.status_code == 401
    assert set(response.json()) == ERROR_KEYS
    assert response.headers["www-authenticate"] == "Bearer"


def test_revoked_token_gets_401(client: TestClient, admin: dict[str, str]) -> None:
    created = client.post(f"{API}/auth/me/tokens", json={"name": "revoked in a test"}, headers=admin).json()
    assert client.get(f"{API}/auth/me", headers=bearer(created["access_token"])).status_code == 200

    deleted = client.delete(f"{API}/auth/me/tokens/{created['_id']}", headers=admin)
    response = client.get(f"{API}/auth/me", headers=bearer(created["access_token"]))

    assert deleted.status_code == 200
    assert_rejected(response)


def test_reused_refresh_token_revokes_sign_in(client: TestClient) -> None:
    add_user(client, "reuse@example.org", "reuse-password")
    first = client.post(f"{API}/auth/login", data={"username": "reuse@example.org", "password": "reuse-password"})
    second = client.post(f"{API}/auth/refresh", json={"refresh_token": first.json()["refresh_token"]})
    assert second.status_code == 200

    reused = client.post(f"{API}/auth/refresh", json={"refresh_token": first.json()["refresh_token"]})

    assert_rejected(reused)
    assert "used already" in reused.json()["detail"]
    assert_rejected(client.get(f"{API}/auth/me", headers=bearer(second.json()["access_token"])))
    assert_rejected(client.post(f"{API}/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}))


def test_token_of_deleted_user_gets_401(client: TestClient, admin: dict[str, str]) -> None:
    add_user(client, "leaving@example.org", "leaving-password")
    signed_in = client.post(
        f"{API}/auth/login", data={"username": "leaving@example.org", "password": "leaving-password"}
    ).json()
    long_lived = client.post(
        f"{API}/auth/me/tokens", json={"name": "script"}, headers=bearer(signed_in["access_token"])
    ).json()

    deleted = client.delete(f"{API}/auth/delete/{signed_in['user_id']}", headers=admin)

    assert deleted.status_code == 200
    assert_rejected(client.get(f"{API}/auth/me", headers=bearer(signed_in["access_token"])))
    assert_rejected(client.get(f"{API}/auth/me", headers=bearer(long_lived["access_token"])))
    assert_rejected(client.post(f"{API}/auth/refresh", json={"refresh_token": signed_in["refresh_token"]}))


def test_refresh_token_is_not_an_access_token(client: TestClient) -> None:
    signed_in = client.post(
        f"{API}/auth/login", data={"username": "admin@example.org", "password": ADMIN_PASSWORD}
    ).json()

    response = client.get(f"{API}/auth/me", headers=bearer(signed_in["refresh_token"]))

    assert_rejected(response)


def test_access_token_is_not_a_refresh_token(client: TestClient) -> None:
    signed_in = client.post(
        f"{API}/auth/login", data={"username": "admin@example.org", "password": ADMIN_PASSWORD}
    ).json()

    response = client.post(f"{API}/auth/refresh", json={"refresh_token": signed_in["access_token"]})

    assert_rejected(response)


def test_issued_at_within_leeway_is_accepted(client: TestClient, admin: dict[str, str], example_root: Path) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=10)
    token = jwt.encode(_claims(client, admin, iat=soon), _service_key(example_root), algorithm="EdDSA")

    response = client.get(f"{API}/auth/me", headers=bearer(token))

    assert response.status_code == 200


def test_issued_at_beyond_leeway_gets_401(client: TestClient, admin: dict[str, str], example_root: Path) -> None:
    later = datetime.now(UTC) + timedelta(minutes=10)
    token = jwt.encode(_claims(client, admin, iat=later), _service_key(example_root), algorithm="EdDSA")

    response = client.get(f"{API}/auth/me", headers=bearer(token))

    assert_rejected(response)
    assert "not yet valid" in response.json()["detail"]


def test_far_expiry_is_capped_by_catalog(client: TestClient, admin: dict[str, str], example_root: Path) -> None:
    """A signed token whose `exp` lies ten years ahead still ends when its catalog record does."""
    user_id = client.get(f"{API}/auth/me", headers=admin).json()["id"]
    past = datetime.now(UTC).replace(tzinfo=None, microsecond=0) - timedelta(hours=2)
    record = TokenRecord(
        id="0123456789abcdef01234567",
        user_id=user_id,
        name="ended",
        token_lifetime="short-lived",
        jti="e" * 32,
        expire_datetime=past + timedelta(hours=1),
        created_at=past,
        revoked=False,
    )
    client.app.state.catalog.tokens.add(record)
    far = datetime.now(UTC) + timedelta(days=3650)
    token = jwt.encode(_claims(client, admin, jti=record.jti, exp=far), _service_key(example_root), algorithm="EdDSA")

    response = client.get(f"{API}/auth/me", headers=bearer(token))

    assert_rejected(response, expired=True)
