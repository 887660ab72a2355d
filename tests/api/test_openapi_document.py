"""The OpenAPI document describes every route: its summary, its error codes and the one error body.

The fuzz test on a live server (tests/e2e/test_fuzz_live.py) checks the statuses that
each route really returns. This test checks the codes that follow from a route's access
rule, parameters and body, so that a new route cannot leave them out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.access import route_rule
from tests.api.conftest import app_without_projects

ERROR_BODY_REF = "#/components/schemas/ErrorBody"
# `{run_id:str}` in a route path is `{run_id}` in the document.
_PATH_PARAMETER_TYPE = re.compile(r"\{(\w+):[^}]+\}")
_METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root: Path = tmp_path_factory.mktemp("openapi")
    with app_without_projects(root) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/docs/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in _METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def _rules(client: TestClient) -> dict[tuple[str, str], str]:
    """Return the access rule of every (method, document path) of the app."""
    rules = {}
    for route in client.app.routes:
        path = _PATH_PARAMETER_TYPE.sub(r"{\1}", route.path)
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                rules[(method, path)] = route_rule(handler)
    return rules


def _web_page_routes(client: TestClient) -> set[tuple[str, str]]:
    """Return the routes of the web page (api.web), which leave themselves out of the document: pages, not operations."""
    pages = set()
    for route in client.app.routes:
        path = _PATH_PARAMETER_TYPE.sub(r"{\1}", route.path)
        for handler in getattr(route, "route_handlers", []):
            if not handler.resolve_include_in_schema() and not path.startswith("/docs") and path != "/schema":
                pages |= {(method, path) for method in handler.http_methods}
    return pages


def test_document_lists_every_api_route(client: TestClient, document: dict[str, Any]) -> None:
    listed = {(method, path) for method, path, _ in _operations(document)}
    routes = {key for key in _rules(client) if key[0] not in ("HEAD", "OPTIONS") and not key[1].startswith("/docs")}
    routes -= _web_page_routes(client)

    assert routes - listed == set()
    assert len(listed) > 60


def test_document_leaves_out_documentation_pages(document: dict[str, Any]) -> None:
    assert [path for path in document["paths"] if path.startswith("/docs")] == []


def test_document_leaves_out_web_pages(client: TestClient, document: dict[str, Any]) -> None:
    pages = _web_page_routes(client)
    listed = {(method, path) for method, path, _ in _operations(document)}

    assert len(pages) >= 8
    assert pages & listed == set()


def test_every_operation_has_summary(document: dict[str, Any]) -> None:
    missing = [f"{method} {path}" for method, path, operation in _operations(document) if not operation.get("summary")]

    assert missing == []


def test_every_error_response_has_error_body(document: dict[str, Any]) -> None:
    wrong = []
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400 or path == "/health":
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") != ERROR_BODY_REF:
                wrong.append(f"{method} {path} {status}")

    assert wrong == []


def test_error_codes_follow_access_rule(client: TestClient, document: dict[str, Any]) -> None:
    rules = _rules(client)
    missing = []
    for method, path, operation in _operations(document):
        rule = rules[(method, path)]
        documented = set(operation["responses"])
        # /health answers 503 with its own body, and /health/live reads nothing, so it has no 503.
        expected = {"503"} if path not in ("/health", "/health/live") else set()
        if rule != "public":
            expected.add("401")
        if rule in ("admin", "write", "manage"):
            expected.add("403")
        if "requestBody" in operation:
            expected |= {"400", "413"}
        if "{" in path or operation.get("parameters"):
            expected.add("400")
        if expected - documented:
            missing.append(f"{method} {path} ({rule}): {sorted(expected - documented)}")

    assert missing == []


def test_every_success_response_has_schema(document: dict[str, Any]) -> None:
    missing = []
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            if not status.startswith("2"):
                continue
            content = response.get("content", {})
            if not content or any("schema" not in media for media in content.values()):
                missing.append(f"{method} {path} {status}")

    assert missing == []
