"""An app over copies of the real Depictio examples, driven through Litestar's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from litestar.testing import TestClient

from api import create_app
from api.security import hash_password
from catalog import UserRecord, user_id_for, utc_now
from config import load_projects, load_settings
from tests.examples import copy_all_examples, write_settings

ADMIN_PASSWORD = "admin-password-for-tests"
API = "/depictio/api/v1"


@pytest.fixture(scope="module")
def example_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("examples")
    write_settings(root, copy_all_examples(root))
    return root


@pytest.fixture(scope="module")
def client(example_root: Path) -> Iterator[TestClient]:
    settings = load_settings(str(example_root / "depictio.toml"), environ={})
    app = create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)
    with TestClient(app) as test_client:
        yield test_client


def login(client: TestClient, email: str, password: str) -> dict[str, str]:
    response = client.post(f"{API}/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def add_user(client: TestClient, email: str, password: str) -> dict[str, str]:
    """Store an active user who is not an administrator, sign them in and return their headers."""
    client.app.state.catalog.users.add(
        UserRecord(
            id=user_id_for(email),
            email=email,
            password_hash=hash_password(password),
            is_admin=False,
            is_active=True,
            registration_date=utc_now(),
            last_login=None,
        )
    )
    return login(client, email, password)


@pytest.fixture(scope="module")
def admin(client: TestClient) -> dict[str, str]:
    return login(client, "admin@example.org", ADMIN_PASSWORD)


@contextmanager
def app_without_projects(root: Path, environ: dict[str, str] | None = None) -> Iterator[TestClient]:
    """Run the app on a new catalog under `root` with no projects, and settings overridden by `environ`.

    It starts faster than the example app, for tests of accounts and tokens that need their own settings.
    """
    write_settings(root, [])
    settings = load_settings(str(root / "depictio.toml"), environ=environ or {})
    app = create_app(settings, [], admin_password=ADMIN_PASSWORD)
    with TestClient(app) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
