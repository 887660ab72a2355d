"""The error contract: every route responds to a bad request with the one JSON error shape.

The test walks the app's route table rather than a list, so a new route is covered
without an edit here.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.api.conftest import API

ERROR_KEYS = {"status_code", "detail"}
# An id that names nothing, in every path parameter.
NO_SUCH_ID = "0" * 24
_PARAMETER = re.compile(r"\{[^}]+\}")


def _routes(client: TestClient) -> list[tuple[str, str]]:
    """Return (method, path) of every API route, with an unknown id in each path parameter."""
    found = set()
    for route in client.app.routes:
        if not route.path.startswith(API):
            continue
        path = _PARAMETER.sub(NO_SUCH_ID, route.path)
        for method in getattr(route, "methods", set()):
            if method not in ("HEAD", "OPTIONS"):
                found.add((method, path))
    return sorted(found)


def _assert_error_shape(response: Any, where: str) -> None:
    assert response.status_code >= 400, f"{where}: {response.status_code} {response.text[:200]}"
    assert response.status_code < 500, f"{where}: {response.status_code} {response.text[:200]}"
    body = response.json()
    assert set(body) == ERROR_KEYS, f"{where}: {body}"
    assert body["status_code"] == response.status_code, where
    assert isinstance(body["detail"], str), where
    assert body["detail"], where


def test_route_table_is_walked(client: TestClient) -> None:
    routes = _routes(client)

    assert len(routes) > 50
    assert ("POST", f"{API}/sql") in routes


def test_malformed_bodies_get_error_shape(client: TestClient, admin: dict[str, str]) -> None:
    # Every write route with a JSON body that is not JSON, as an administrator: 4xx, never 5xx.
    checked = 0
    for method, path in _routes(client):
        if method not in ("POST", "PUT", "PATCH"):
            continue
        response = client.request(
            method, path, content=b'{"unclosed": ', headers={**admin, "Content-Type": "application/json"}
        )
        assert response.status_code < 500, f"{method} {path}: {response.text[:200]}"
        if response.status_code < 400:
            continue  # A route that reads no body, such as the token check, accepts this.
        _assert_error_shape(response, f"{method} {path}")
        checked += 1
    assert checked >= 15


def test_unknown_ids_get_error_shape(client: TestClient, admin: dict[str, str]) -> None:
    checked = 0
    for method, path in _routes(client):
        if NO_SUCH_ID not in path or method != "GET":
            continue
        response = client.get(path, headers=admin)
        assert response.status_code < 500, f"{method} {path}: {response.text[:200]}"
        if response.status_code < 400:
            continue  # Some lookups return an empty result for an unknown id.
        _assert_error_shape(response, f"{method} {path}")
        checked += 1
    assert checked >= 15


def test_anonymous_calls_get_error_shape(client: TestClient) -> None:
    checked = 0
    for method, path in _routes(client):
        response = client.request(method, path)
        assert response.status_code < 500, f"{method} {path}: {response.text[:200]}"
        if response.status_code < 400:
            continue  # Public routes, such as the health check.
        _assert_error_shape(response, f"{method} {path}")
        checked += 1
    assert checked >= 50


@pytest.mark.parametrize("method", ["DELETE", "PATCH"])
def test_unrouted_methods_get_405_shape(client: TestClient, admin: dict[str, str], method: str) -> None:
    routes = _routes(client)
    checked = 0
    for route_method, path in routes:
        if route_method != "GET" or (method, path) in routes:
            continue
        response = client.request(method, path, headers=admin)
        assert response.status_code == 405, f"{method} {path}: {response.status_code}"
        _assert_error_shape(response, f"{method} {path}")
        checked += 1
    assert checked >= 15


def test_oversized_body_gets_413_shape(client: TestClient, admin: dict[str, str]) -> None:
    limit = client.app.state.settings.server.max_body_mb * 2**20
    response = client.post(
        f"{API}/sql", content=b" " * (limit + 1024), headers={**admin, "Content-Type": "application/json"}
    )

    assert response.status_code == 413
    _assert_error_shape(response, "POST /sql")
    assert "server.max_body_mb" in response.json()["detail"]


def test_body_over_route_limit_gets_413_shape(client: TestClient, admin: dict[str, str]) -> None:
    # Dashboard imports keep their own 2 MiB limit, below server.max_body_mb.
    response = client.post(
        f"{API}/dashboards/import/json",
        content=b" " * (2 * 2**20 + 1024),
        headers={**admin, "Content-Type": "application/json"},
    )

    assert response.status_code == 413
    _assert_error_shape(response, "POST /dashboards/import/json")
    assert "2048 KiB" in response.json()["detail"]


def test_body_of_wrong_type_gets_400_shape(client: TestClient, admin: dict[str, str]) -> None:
    # Well-formed JSON that no route takes as its body: the case that other frameworks reject with 422.
    checked = 0
    for method, path in _routes(client):
        if method not in ("POST", "PUT", "PATCH"):
            continue
        response = client.request(method, path, json=[[1]], headers=admin)
        assert response.status_code < 500, f"{method} {path}: {response.text[:200]}"
        if response.status_code < 400:
            continue  # A route that reads no body, such as the token check, accepts this.
        _assert_error_shape(response, f"{method} {path}")
        checked += 1
    assert checked >= 15


def test_wrong_media_type_gets_error_shape(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(f"{API}/sql", content=b"SELECT 1", headers={**admin, "Content-Type": "text/plain"})

    _assert_error_shape(response, "POST /sql")
