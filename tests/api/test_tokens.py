"""Refresh tokens, long-lived tokens, token checks and the limit on failed sign-ins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from litestar.testing import TestClient

from api.ratelimit import ACCOUNT_SPREAD, LoginRateLimiter
from tests.api.conftest import ADMIN_PASSWORD, API, add_user, app_without_projects, bearer

ERROR_KEYS = {"status_code", "detail"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _sign_in(client: TestClient, email: str, password: str) -> dict[str, str]:
    response = client.post(f"{API}/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


# Refresh


def test_refresh_returns_new_working_pair(client: TestClient) -> None:
    add_user(client, "refresher@example.org", "refresher-password")
    first = _sign_in(client, "refresher@example.org", "refresher-password")

    response = client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    second = response.json()

    assert response.status_code == 200
    assert second["_id"] == first["_id"]
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get(f"{API}/auth/me", headers=bearer(second["access_token"])).status_code == 200
    third = client.post(f"{API}/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200


def test_refresh_retires_previous_access_token(client: TestClient) -> None:
    first = _sign_in(client, "admin@example.org", ADMIN_PASSWORD)

    client.post(f"{API}/auth/refresh", json={"refresh_token": first["refresh_token"]})
    response = client.get(f"{API}/auth/me", headers=bearer(first["access_token"]))

    assert response.status_code == 401


def test_refresh_without_token_is_400(client: TestClient) -> None:
    response = client.post(f"{API}/auth/refresh", json={})

    assert response.status_code == 400
    assert set(response.json()) == ERROR_KEYS
    assert "refresh_token" in response.json()["detail"]


def test_refresh_with_garbage_is_401(client: TestClient) -> None:
    response = client.post(f"{API}/auth/refresh", json={"refresh_token": "not-a-token"})

    assert response.status_code == 401
    assert set(response.json()) == ERROR_KEYS
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


# Long-lived tokens


def test_long_lived_token_works_and_lasts(client: TestClient) -> None:
    headers = add_user(client, "scripter@example.org", "scripter-password")

    response = client.post(f"{API}/auth/me/tokens", json={"name": "nightly", "lifetime_days": 30}, headers=headers)
    body = response.json()

    assert response.status_code == 200
    assert body["token_lifetime"] == "long-lived"
    assert body["name"] == "nightly"
    lifetime = datetime.strptime(body["expire_datetime"], TIME_FORMAT) - datetime.strptime(
        body["created_at"], TIME_FORMAT
    )
    assert lifetime == timedelta(days=30)
    assert client.get(f"{API}/auth/me", headers=bearer(body["access_token"])).json()["email"] == (
        "scripter@example.org"
    )


def test_long_lived_token_defaults_to_maximum(client: TestClient, admin: dict[str, str]) -> None:
    body = client.post(f"{API}/auth/me/tokens", json={"name": "default lifetime"}, headers=admin).json()

    lifetime = datetime.strptime(body["expire_datetime"], TIME_FORMAT) - datetime.strptime(
        body["created_at"], TIME_FORMAT
    )
    assert lifetime == timedelta(days=365)


def test_long_lived_token_over_maximum_is_400(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(f"{API}/auth/me/tokens", json={"name": "too long", "lifetime_days": 366}, headers=admin)

    assert response.status_code == 400
    assert set(response.json()) == ERROR_KEYS
    assert "1 to 365" in response.json()["detail"]


def test_long_lived_token_needs_name(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(f"{API}/auth/me/tokens", json={"name": "   "}, headers=admin)

    assert response.status_code == 400
    assert "name" in response.json()["detail"]


def test_token_name_unique_per_user(client: TestClient, admin: dict[str, str]) -> None:
    other = add_user(client, "namesake@example.org", "namesake-password")
    first = client.post(f"{API}/auth/me/tokens", json={"name": "shared name"}, headers=admin)

    again = client.post(f"{API}/auth/me/tokens", json={"name": "shared name"}, headers=admin)
    other_user = client.post(f"{API}/auth/me/tokens", json={"name": "shared name"}, headers=other)

    assert first.status_code == 200
    assert again.status_code == 409
    assert set(again.json()) == ERROR_KEYS
    assert other_user.status_code == 200


def test_list_tokens_hides_secrets(client: TestClient) -> None:
    headers = add_user(client, "lister@example.org", "lister-password")
    created = client.post(f"{API}/auth/me/tokens", json={"name": "listed"}, headers=headers).json()

    response = client.get(f"{API}/auth/list_tokens", headers=headers)

    assert response.status_code == 200
    names = {token["name"]: token for token in response.json()}
    assert "listed" in names
    assert names["listed"]["_id"] == created["_id"]
    assert names["listed"]["current"] is False
    assert [token["current"] for token in response.json()].count(True) == 1
    for token in response.json():
        assert "access_token" not in token
        assert "refresh_token" not in token
    assert created["access_token"] not in response.text
    assert created["refresh_token"] not in response.text
    assert headers["Authorization"].removeprefix("Bearer ") not in response.text


def test_list_tokens_filters_by_lifetime(client: TestClient) -> None:
    headers = add_user(client, "filter@example.org", "filter-password")
    client.post(f"{API}/auth/me/tokens", json={"name": "filtered"}, headers=headers)

    long_lived = client.get(f"{API}/auth/list_tokens", params={"token_lifetime": "long-lived"}, headers=headers)
    short_lived = client.get(f"{API}/auth/list_tokens", params={"token_lifetime": "short-lived"}, headers=headers)
    unknown = client.get(f"{API}/auth/list_tokens", params={"token_lifetime": "forever"}, headers=headers)

    assert [token["name"] for token in long_lived.json()] == ["filtered"]
    assert {token["token_lifetime"] for token in short_lived.json()} == {"short-lived"}
    assert unknown.status_code == 400


def test_list_tokens_shows_only_own(client: TestClient, admin: dict[str, str]) -> None:
    headers = add_user(client, "private@example.org", "private-password")
    client.post(f"{API}/auth/me/tokens", json={"name": "private token"}, headers=headers)

    response = client.get(f"{API}/auth/list_tokens", headers=admin)

    assert "private token" not in {token["name"] for token in response.json()}
    user_id = client.get(f"{API}/auth/me", headers=headers).json()["id"]
    assert user_id not in {token["user_id"] for token in response.json()}


def test_delete_token_of_other_user_is_404(client: TestClient, admin: dict[str, str]) -> None:
    headers = add_user(client, "victim@example.org", "victim-password")
    created = client.post(f"{API}/auth/me/tokens", json={"name": "kept"}, headers=headers).json()

    response = client.delete(f"{API}/auth/me/tokens/{created['_id']}", headers=admin)

    assert response.status_code == 404
    assert set(response.json()) == ERROR_KEYS
    assert client.get(f"{API}/auth/me", headers=bearer(created["access_token"])).status_code == 200


def test_delete_unknown_token_is_404(client: TestClient, admin: dict[str, str]) -> None:
    response = client.delete(f"{API}/auth/me/tokens/ffffffffffffffffffffffff", headers=admin)

    assert response.status_code == 404


def test_delete_own_token_removes_it_from_list(client: TestClient) -> None:
    headers = add_user(client, "tidy@example.org", "tidy-password")
    created = client.post(f"{API}/auth/me/tokens", json={"name": "temporary"}, headers=headers).json()

    response = client.delete(f"{API}/auth/me/tokens/{created['_id']}", headers=headers)

    assert response.status_code == 200
    assert response.json()["success"] is True
    names = {token["name"] for token in client.get(f"{API}/auth/list_tokens", headers=headers).json()}
    assert "temporary" not in names


# check_token_validity


def test_validity_of_valid_token(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(f"{API}/auth/check_token_validity", headers=admin)

    assert response.status_code == 200
    assert response.json() == {"success": True, "can_refresh": True, "action": "valid"}


def test_validity_without_token_is_logout(client: TestClient) -> None:
    response = client.post(f"{API}/auth/check_token_validity")

    assert response.status_code == 200
    assert response.json() == {"success": False, "can_refresh": False, "action": "logout"}


def test_validity_of_garbage_is_logout(client: TestClient) -> None:
    response = client.post(f"{API}/auth/check_token_validity", headers=bearer("a.b.c"))

    assert response.json() == {"success": False, "can_refresh": False, "action": "logout"}


def test_validity_of_expired_token_is_refresh(client: TestClient, example_root: Path) -> None:
    signed_in = _sign_in(client, "admin@example.org", ADMIN_PASSWORD)
    claims = jwt.decode(signed_in["access_token"], options={"verify_signature": False})
    past = datetime.now(UTC) - timedelta(hours=2)
    claims.update(iat=past, exp=past + timedelta(hours=1))
    key = load_pem_private_key((example_root / "auth.key").read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    expired = jwt.encode(claims, key, algorithm="EdDSA")

    response = client.post(f"{API}/auth/check_token_validity", headers=bearer(expired))

    assert response.json() == {"success": False, "can_refresh": True, "action": "refresh"}


def test_validity_of_revoked_token_is_logout(client: TestClient, admin: dict[str, str]) -> None:
    created = client.post(f"{API}/auth/me/tokens", json={"name": "checked then revoked"}, headers=admin).json()
    client.delete(f"{API}/auth/me/tokens/{created['_id']}", headers=admin)

    response = client.post(f"{API}/auth/check_token_validity", headers=bearer(created["access_token"]))

    assert response.json() == {"success": False, "can_refresh": False, "action": "logout"}


# Failed sign-ins

LIMITS = {
    "DEPICTIO_AUTH_LOGIN_FAILURES_PER_ACCOUNT": "3",
    "DEPICTIO_AUTH_LOGIN_FAILURES_PER_ADDRESS": "6",
    "DEPICTIO_AUTH_LOGIN_WINDOW_SECONDS": "600",
}


def _fail(client: TestClient, email: str) -> int:
    response = client.post(f"{API}/auth/login", data={"username": email, "password": "wrong-password"})
    return response.status_code


def test_account_limit_returns_429(tmp_path: Path) -> None:
    with app_without_projects(tmp_path, LIMITS) as client:
        statuses = [_fail(client, "admin@example.org") for _ in range(3)]

        response = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": ADMIN_PASSWORD})

    assert statuses == [401, 401, 401]
    assert response.status_code == 429
    assert set(response.json()) == ERROR_KEYS
    assert response.json()["status_code"] == 429
    assert 0 < int(response.headers["retry-after"]) <= 600


def test_account_limit_ignores_email_case(tmp_path: Path) -> None:
    with app_without_projects(tmp_path, LIMITS) as client:
        for email in ("admin@example.org", "ADMIN@example.org", "Admin@Example.org"):
            _fail(client, email)

        status = _fail(client, "admin@EXAMPLE.org")

    assert status == 429


def test_address_limit_spans_accounts(tmp_path: Path) -> None:
    with app_without_projects(tmp_path, LIMITS) as client:
        statuses = [_fail(client, f"guess{number}@example.org") for number in range(6)]

        response = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": ADMIN_PASSWORD})

    assert statuses == [401] * 6
    assert response.status_code == 429
    assert "retry-after" in response.headers


def test_success_keeps_address_count(tmp_path: Path) -> None:
    with app_without_projects(tmp_path, LIMITS) as client:
        for number in range(5):
            _fail(client, f"guess{number}@example.org")
        signed_in = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": ADMIN_PASSWORD})
        sixth = _fail(client, "guess5@example.org")

        status = _fail(client, "guess6@example.org")

    assert signed_in.status_code == 200
    assert sixth == 401
    assert status == 429


def test_success_clears_account_count(tmp_path: Path) -> None:
    with app_without_projects(tmp_path, LIMITS) as client:
        _fail(client, "admin@example.org")
        _fail(client, "admin@example.org")
        signed_in = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": ADMIN_PASSWORD})
        _fail(client, "admin@example.org")
        _fail(client, "admin@example.org")

        response = client.post(f"{API}/auth/login", data={"username": "admin@example.org", "password": ADMIN_PASSWORD})

    assert signed_in.status_code == 200
    assert response.status_code == 200


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_window_slides() -> None:
    clock = _Clock()
    limiter = LoginRateLimiter(per_account=2, per_address=100, window_seconds=60, clock=clock)
    limiter.record_failure("ada@example.org", "10.0.0.1")
    clock.now += 30
    limiter.record_failure("ada@example.org", "10.0.0.1")

    blocked = limiter.retry_after("ada@example.org", "10.0.0.1")
    clock.now += 31
    allowed = limiter.retry_after("ada@example.org", "10.0.0.1")

    assert blocked == 30
    assert allowed is None


def test_limiter_counts_addresses_apart() -> None:
    limiter = LoginRateLimiter(per_account=100, per_address=1, window_seconds=60, clock=_Clock())
    limiter.record_failure("ada@example.org", "10.0.0.1")

    assert limiter.retry_after("bob@example.org", "10.0.0.1") == 60
    assert limiter.retry_after("bob@example.org", "10.0.0.2") is None


def test_limiter_lockout_stays_with_failing_address() -> None:
    limiter = LoginRateLimiter(per_account=2, per_address=100, window_seconds=60, clock=_Clock())
    for _ in range(2):
        limiter.record_failure("ada@example.org", "10.0.0.66")

    # A stranger who fails on purpose blocks the account from their own address only.
    assert limiter.retry_after("ada@example.org", "10.0.0.66") == 60
    assert limiter.retry_after("ada@example.org", "10.0.0.1") is None


def test_limiter_stops_guesses_spread_over_addresses() -> None:
    limiter = LoginRateLimiter(per_account=2, per_address=100, window_seconds=60, clock=_Clock())
    for number in range(2 * ACCOUNT_SPREAD):
        limiter.record_failure("ada@example.org", f"10.0.1.{number}")

    assert limiter.retry_after("ada@example.org", "10.0.2.1") == 60


def test_limiter_counts_unicode_spellings_as_one() -> None:
    limiter = LoginRateLimiter(per_account=1, per_address=100, window_seconds=60, clock=_Clock())
    limiter.record_failure("edi\u0307tor@example.org", "10.0.0.1")

    assert limiter.retry_after("ed\u0130tor@example.org", "10.0.0.1") == 60
