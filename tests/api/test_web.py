"""The web page over the real app: sign-in, pages, permissions, paging, and the session cookie's limits."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest
from litestar.testing import TestClient

from api import create_app
from api.web.render import _failure_reason, _path_in_run
from api.web.session import local_path
from config import load_projects, load_settings
from tests.api.conftest import API, add_user
from tests.examples import copy_bundled_examples, write_settings

PASSWORD = "web-test-password"
VIEWER = "viewer@example.org"
STRANGER = "stranger@example.org"
PENGUINS = "6a0001000000000000000001"
PENGUINS_WORKFLOW = "6a0001000000000000000002"
PHYSICAL_FEATURES = "6a0001000000000000000003"
IRIS = "6a0002000000000000000001"
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@dataclass
class World:
    client: TestClient
    root: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("web")
    penguins, iris = copy_bundled_examples(root)
    # Penguins is private with one viewer; iris stays public.
    roles = f"permissions:\n  owners: [admin@example.org]\n  viewers: [{VIEWER}]"
    penguins.write_text(penguins.read_text().replace("is_public: true", f"is_public: false\n{roles}"))
    settings_path = write_settings(root, [penguins, iris])
    settings = load_settings(str(settings_path), environ={"DEPICTIO_INGEST_WATCH_MODE": "off"})
    app = create_app(settings, load_projects(settings.projects), admin_password=PASSWORD)
    with TestClient(app) as client:
        add_user(client, VIEWER, PASSWORD)
        add_user(client, STRANGER, PASSWORD)
        yield World(client=client, root=root)


@pytest.fixture
def browser(world: World) -> Iterator[TestClient]:
    """The app's client as a browser without a session; the cookies it gets are dropped afterwards."""
    world.client.cookies.clear()
    yield world.client
    world.client.cookies.clear()


def sign_in(client: TestClient, email: str = "admin@example.org", password: str = PASSWORD) -> None:
    response = client.post(
        "/login", data={"email": email, "password": password, "next": "/"}, headers=BROWSER, follow_redirects=False
    )
    assert response.status_code == 303, response.text


def page(client: TestClient, path: str) -> str:
    response = client.get(path, headers=BROWSER)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def test_page_without_session_sends_browser_to_sign_in(browser: TestClient) -> None:
    response = browser.get(f"/projects/{PENGUINS}?x=1", headers=BROWSER)

    assert response.status_code == 200
    assert str(response.url).endswith(f"/login?next=/projects/{PENGUINS}%3Fx%3D1")
    assert 'id="login-form"' in response.text


def test_api_client_gets_json_401(browser: TestClient) -> None:
    response = browser.get(f"/projects/{PENGUINS}")

    assert response.status_code == 401
    assert set(response.json()) == {"status_code", "detail"}


def test_wrong_password_shows_the_form_again(browser: TestClient) -> None:
    response = browser.post("/login", data={"email": VIEWER, "password": "not-the-password"}, headers=BROWSER)

    assert response.status_code == 401
    assert 'class="flash error"' in response.text
    assert "depictiod_session" not in response.headers.get("set-cookie", "")


def test_sign_in_sets_httponly_lax_cookies(browser: TestClient) -> None:
    response = browser.post(
        "/login", data={"email": VIEWER, "password": PASSWORD, "next": "/scans"}, follow_redirects=False
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/scans"
    cookies = response.headers.get_list("set-cookie")
    session = next(cookie for cookie in cookies if cookie.startswith("depictiod_session="))
    refresh = next(cookie for cookie in cookies if cookie.startswith("depictiod_refresh="))
    assert "HttpOnly" in session
    assert "SameSite=lax" in session
    assert "Path=/;" in session or session.endswith("Path=/")
    assert "HttpOnly" in refresh
    assert "Path=/session;" in refresh or refresh.endswith("Path=/session")


@pytest.mark.parametrize(
    "target", ["https://evil.example.org/", "//evil.example.org/", "/\\evil.example.org", "javascript:alert(1)", ""]
)
def test_sign_in_never_redirects_off_site(browser: TestClient, target: str) -> None:
    response = browser.post(
        "/login", data={"email": VIEWER, "password": PASSWORD, "next": target}, follow_redirects=False
    )

    assert response.headers["location"] == "/"


def test_local_path_keeps_paths_of_this_site() -> None:
    assert local_path("/collections/abc?sort=-x&limit=10") == "/collections/abc?sort=-x&limit=10"
    assert local_path("/\x00x") == "/"


def test_form_post_from_another_site_is_refused(browser: TestClient) -> None:
    response = browser.post(
        "/login",
        data={"email": VIEWER, "password": PASSWORD},
        headers={**BROWSER, "Origin": "https://evil.example.org"},
        follow_redirects=False,
    )

    assert response.status_code == 403
    assert "depictiod_session" not in response.headers.get("set-cookie", "")


def test_viewer_sees_only_readable_projects(browser: TestClient) -> None:
    sign_in(browser, STRANGER)

    html = page(browser, "/")

    assert f'href="/projects/{IRIS}"' in html
    assert f'href="/projects/{PENGUINS}"' not in html


def test_stranger_gets_404_page_for_private_project(browser: TestClient) -> None:
    sign_in(browser, STRANGER)

    response = browser.get(f"/projects/{PENGUINS}", headers=BROWSER)

    assert response.status_code == 404
    assert 'class="flash error"' in response.text
    assert "not found" in response.text


def test_project_page_lists_runs_collections_and_scans(browser: TestClient) -> None:
    sign_in(browser, VIEWER)

    html = page(browser, f"/projects/{PENGUINS}")

    assert re.findall(r'<a class="run-link"[^>]*>([^<]+)</a>', html) == [
        "run_1_adelie",
        "run_2_chinstrap",
        "run_3_gentoo",
    ]
    tags = re.findall(r'<a class="collection-link"[^>]*>([^<]+)</a>', html)
    assert {"physical_features", "demographic_data"} <= set(tags)
    assert 'class="scan' in html


def test_run_page_lists_files_with_download_links(world: World, browser: TestClient) -> None:
    run = world.client.app.state.catalog.runs.list_for_workflow(PENGUINS_WORKFLOW)[0]
    sign_in(browser, VIEWER)

    html = page(browser, f"/runs/{run.id}")

    file_ids = re.findall(r'href="/depictio/api/v1/files/(\w+)/content"', html)
    assert sorted(file_ids) == sorted(world.client.app.state.catalog.runs.file_ids(run.id))
    assert html.count('data-status="aggregated"') == len(file_ids)
    assert f'href="/depictio/api/v1/runs/{run.id}/archive"' in html


def test_collection_preview_pages_and_sorts(browser: TestClient) -> None:
    sign_in(browser, VIEWER)

    first = page(browser, f"/collections/{PHYSICAL_FEATURES}")
    assert "Rows 1–50 of 344" in first
    next_link = re.search(r'id="next-page" class="button" href="([^"]+)"', first)
    assert next_link is not None
    second = page(browser, next_link.group(1).replace("&amp;", "&"))
    assert "Rows 51–100 of 344" in second
    assert first.split('<table id="preview">')[1] != second.split('<table id="preview">')[1]

    ascending = page(browser, f"/collections/{PHYSICAL_FEATURES}?sort=body_mass_g")
    descending = page(browser, f"/collections/{PHYSICAL_FEATURES}?sort=-body_mass_g")
    assert 'aria-sort="ascending"' in ascending
    assert 'aria-sort="descending"' in descending
    assert f'href="/collections/{PHYSICAL_FEATURES}?sort=-body_mass_g"' in ascending


def test_collection_page_links_every_export_format(browser: TestClient) -> None:
    sign_in(browser, VIEWER)

    html = page(browser, f"/collections/{PHYSICAL_FEATURES}")

    for name in ("csv", "parquet", "arrow"):
        assert f"/datacollections/{PHYSICAL_FEATURES}/export?format={name}" in html


def test_session_cookie_downloads_an_export(browser: TestClient) -> None:
    sign_in(browser, VIEWER)

    response = browser.get(f"{API}/datacollections/{PHYSICAL_FEATURES}/export?format=csv")

    assert response.status_code == 200
    assert response.text.count("\n") == 345


def test_session_cookie_never_authorizes_a_write(world: World, browser: TestClient) -> None:
    sign_in(browser)  # An administrator's session.

    response = browser.post(f"{API}/projects/{PENGUINS}/scan")

    assert response.status_code == 401


def test_sign_out_revokes_the_session(browser: TestClient) -> None:
    sign_in(browser, VIEWER)
    token = browser.cookies.get("depictiod_session")
    assert token

    browser.post("/session/logout", headers=BROWSER)
    response = browser.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 401
    assert browser.cookies.get("depictiod_session") is None


def test_rejected_session_renews_through_refresh_cookie(browser: TestClient) -> None:
    sign_in(browser, VIEWER)
    refresh_token = browser.cookies.get("depictiod_refresh", path="/session")
    assert refresh_token
    domain = next(cookie.domain for cookie in browser.cookies.jar if cookie.name == "depictiod_session")
    browser.cookies.set("depictiod_session", "not-a-token", domain=domain, path="/")

    response = browser.get(f"/projects/{PENGUINS}", headers=BROWSER)

    assert response.status_code == 200
    assert str(response.url).endswith(f"/projects/{PENGUINS}")
    assert browser.cookies.get("depictiod_session", path="/") not in (None, "not-a-token")


def test_scans_page_lists_reports(browser: TestClient) -> None:
    sign_in(browser, VIEWER)

    html = page(browser, "/scans")

    assert html.count('<tr class="scan') >= 2
    assert 'id="failed-files"' in html


def test_pages_carry_security_headers(browser: TestClient) -> None:
    sign_in(browser, VIEWER)

    response = browser.get("/", headers=BROWSER)

    assert response.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


def test_static_files_are_versioned_and_cached(browser: TestClient) -> None:
    sign_in(browser, VIEWER)
    html = page(browser, "/")
    style = re.search(r'href="(/static/\w+/depictiod\.css)"', html)
    script = re.search(r'src="(/static/\w+/depictiod\.js)"', html)
    assert style is not None and script is not None

    current = browser.get(style.group(1))
    older = browser.get("/static/000000000000/depictiod.css")
    unknown = browser.get("/static/000000000000/..%2Fpages.py")

    assert current.status_code == 200
    assert current.headers["content-type"].startswith("text/css")
    assert "immutable" in current.headers["cache-control"]
    assert older.headers["cache-control"] == "no-cache"
    assert unknown.status_code == 404
    assert browser.get(script.group(1)).headers["content-type"].startswith("text/javascript")


def test_bad_sort_column_is_a_400_page(browser: TestClient) -> None:
    sign_in(browser, VIEWER)

    response = browser.get(f"/collections/{PHYSICAL_FEATURES}?sort=no_such_column", headers=BROWSER)

    assert response.status_code == 400
    assert "no_such_column" in response.text


def test_html_escapes_catalog_text(world: World, browser: TestClient) -> None:
    sign_in(browser)

    html = page(browser, f"/collections/{PHYSICAL_FEATURES}")

    assert "<script>" not in html.split("</head>")[1]


def test_session_cookie_opens_the_event_stream(browser: TestClient) -> None:
    sign_in(browser, VIEWER)

    # max_seconds=0 sends the missed events and ends, so the request returns.
    for _ in range(8):  # More than server.event_streams_per_user: each stream gives its place back.
        response = browser.get(f"{API}/events?max_seconds=0")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")


def test_parallel_renewals_keep_the_session(browser: TestClient) -> None:
    # Two tabs renewing at once send the same refresh cookie; neither may end the session.
    sign_in(browser, VIEWER)
    refresh_token = browser.cookies.get("depictiod_refresh", path="/session")
    assert refresh_token

    locations = []
    for _ in range(2):
        browser.cookies.clear()
        browser.cookies.set("depictiod_refresh", refresh_token, path="/session")
        response = browser.get("/session/refresh?next=/scans", follow_redirects=False)
        locations.append(response.headers["location"])
        session = next(c for c in response.headers.get_list("set-cookie") if c.startswith("depictiod_session="))
        token = session.split(";")[0].removeprefix("depictiod_session=")
        assert browser.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    assert locations == ["/scans", "/scans"]


def test_sign_out_after_expiry_revokes_refresh(browser: TestClient) -> None:
    sign_in(browser, VIEWER)
    refresh_token = browser.cookies.get("depictiod_refresh", path="/session")
    assert refresh_token
    # The browser dropped the expired access cookie; the refresh cookie still goes to /session.
    browser.cookies.clear()
    browser.cookies.set("depictiod_refresh", refresh_token, path="/session")

    browser.post("/session/logout", headers=BROWSER, follow_redirects=False)
    browser.cookies.set("depictiod_refresh", refresh_token, path="/session")
    response = browser.get("/session/refresh?next=/", follow_redirects=False)

    assert response.headers["location"].startswith("/login")


@pytest.mark.parametrize("origin", ["http://[::1", "null", "https://evil.example.org"])
def test_bad_origin_on_sign_out_is_403(browser: TestClient, origin: str) -> None:
    response = browser.post("/session/logout", headers={**BROWSER, "Origin": origin}, follow_redirects=False)

    assert response.status_code == 403


def test_foreign_referer_without_origin_is_403(browser: TestClient) -> None:
    response = browser.post(
        "/login",
        data={"email": VIEWER, "password": PASSWORD},
        headers={**BROWSER, "Referer": "https://evil.example.org/page"},
        follow_redirects=False,
    )

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("accept", "html"),
    [("text/html;q=0, application/json", False), ("TEXT/HTML", True), ("application/json", False)],
)
def test_accept_header_picks_error_format(browser: TestClient, accept: str, html: bool) -> None:
    response = browser.get("/projects/ffffffffffffffffffffffff", headers={"Accept": accept}, follow_redirects=False)

    assert response.headers["content-type"].startswith("text/html") is html or response.status_code == 303
    assert response.headers["vary"] == "Accept"


def test_huge_numbers_in_page_parameters_are_clamped(browser: TestClient) -> None:
    sign_in(browser, VIEWER)

    preview = browser.get(f"/collections/{PHYSICAL_FEATURES}?limit={'9' * 5000}", headers=BROWSER)
    scans = browser.get(f"/scans?offset={'9' * 5000}", headers=BROWSER)

    assert preview.status_code == 200
    assert scans.status_code == 200
    assert "No scan on this page" in scans.text


def test_bad_cursor_names_the_after_parameter(browser: TestClient) -> None:
    sign_in(browser, VIEWER)

    response = browser.get(f"/collections/{PHYSICAL_FEATURES}?after=garbage", headers=BROWSER)

    assert response.status_code == 400
    assert "after:" in response.text


def test_static_file_has_one_charset(browser: TestClient) -> None:
    sign_in(browser, VIEWER)
    html = page(browser, "/")
    style = re.search(r'href="(/static/\w+/depictiod\.css)"', html)
    assert style is not None

    response = browser.get(style.group(1))

    assert response.headers["content-type"] == "text/css; charset=utf-8"


def test_sign_in_over_a_session_ends_it(browser: TestClient) -> None:
    sign_in(browser, VIEWER)
    first = browser.cookies.get("depictiod_session")

    sign_in(browser, STRANGER)

    assert browser.get(f"{API}/auth/me", headers={"Authorization": f"Bearer {first}"}).status_code == 401


def test_run_page_tells_same_named_files_apart(world: World) -> None:
    record = world.client.app.state.catalog.files.list_for_workflow(PENGUINS_WORKFLOW)[0]
    nested = msgspec.structs.replace(
        record, file_location=record.file_location.replace(f"/{record.run_tag}/", f"/{record.run_tag}/qc/")
    )

    assert _path_in_run(record) == record.filename
    assert _path_in_run(nested) == f"qc/{record.filename}"


def test_failure_reason_names_its_line_once(world: World) -> None:
    record = world.client.app.state.catalog.files.list_for_workflow(PENGUINS_WORKFLOW)[0]

    assert _failure_reason(msgspec.structs.replace(record, error="bad quote", error_line=3)) == "bad quote (line 3)"
    assert _failure_reason(msgspec.structs.replace(record, error="line 3 has 6 fields", error_line=3)) == (
        "line 3 has 6 fields"
    )
