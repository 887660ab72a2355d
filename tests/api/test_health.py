"""/health reports whether the catalog can still be read."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from api import create_app
from config import load_projects, load_settings
from tests.examples import copy_bundled_examples, write_settings


def test_health_is_503_when_catalog_is_unreadable(tmp_path: Path) -> None:
    settings = load_settings(str(write_settings(tmp_path, copy_bundled_examples(tmp_path))), environ={})
    app = create_app(settings, load_projects(settings.projects), admin_password="health-test-password")
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200

        client.app.state.catalog.store.close()
        response = client.get("/health")

        assert response.status_code == 503
        assert response.json()["status"] == "unhealthy"
