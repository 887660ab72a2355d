"""Every error response has the same JSON shape and a useful message."""

from __future__ import annotations

from litestar.testing import TestClient

from tests.api.conftest import API

ERROR_KEYS = {"status_code", "detail"}


def test_unknown_path_is_404_with_error_shape(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/no/such/route", headers=admin)
    assert response.status_code == 404
    assert set(response.json()) == ERROR_KEYS


def test_unknown_run_is_404(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/runs/get/000000000000000000000000", headers=admin)
    assert response.status_code == 404
    assert response.json() == {"status_code": 404, "detail": "run '000000000000000000000000' not found"}


def test_unknown_collection_table_is_404(client: TestClient, admin: dict[str, str]) -> None:
    for route in ("get", "specs", "shape", "preview"):
        response = client.get(f"{API}/deltatables/{route}/ffffffffffffffffffffffff", headers=admin)
        assert response.status_code == 404, route
        assert set(response.json()) == ERROR_KEYS, route


def test_missing_query_parameter_is_400(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/projects/get/from_id", headers=admin)
    assert response.status_code == 400
    assert set(response.json()) == ERROR_KEYS
    assert "project_id" in response.json()["detail"]


def test_bad_integer_parameter_is_400(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(
        f"{API}/deltatables/preview/6a0001000000000000000003", params={"limit": "many"}, headers=admin
    )
    assert response.status_code == 400
    assert "limit" in response.json()["detail"]


def test_wrong_method_is_405_with_error_shape(client: TestClient, admin: dict[str, str]) -> None:
    response = client.delete(f"{API}/projects/get/all", headers=admin)
    assert response.status_code == 405
    assert set(response.json()) == ERROR_KEYS


def test_unknown_project_name_is_404(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/projects/get/from_name/No such project", headers=admin)
    assert response.status_code == 404
    assert set(response.json()) == ERROR_KEYS


def test_deeply_nested_body_gets_400(client: TestClient) -> None:
    body = "[" * 5000 + "]" * 5000

    response = client.post(f"{API}/auth/refresh", content=body, headers={"Content-Type": "application/json"})

    assert response.status_code == 400
    assert response.json() == {"status_code": 400, "detail": "invalid request: the body is nested too deeply"}


def test_huge_scan_offset_is_clamped(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(f"{API}/scans", params={"offset": str(2**70)}, headers=admin)

    assert response.status_code == 200
    assert response.json()["scans"] == []
