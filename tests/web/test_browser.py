"""depictiod's web pages in a real headless Chromium, against a live `depictiod serve`.

The tests select elements only by the ids, classes and attributes that the pages promise (the
sign-in form, `tr.run`, `#preview`, `a.download`, `body[data-refreshed]` and so on).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyarrow.parquet
from playwright.sync_api import Locator, Page, expect

from tests.web.conftest import (
    ADMIN_EMAIL,
    INGEST_WAIT_MS,
    IRIS_PROJECT_ID,
    PASSWORD,
    PENGUINS_PROJECT_ID,
    WAIT_MS,
    BrowseFactory,
    Browsing,
    WebServer,
)

PENGUINS_NAME = "Palmer penguins (bundled example)"
PENGUIN_RUNS = ["run_1_adelie", "run_2_chinstrap", "run_3_gentoo"]
PHYSICAL_FEATURES_ID = "6a0001000000000000000003"
PHYSICAL_FEATURES_ROWS = 344
IRIS_COLLECTION_ID = "6a0002000000000000000003"
UNKNOWN_ID = "6a00ffffffffffffffffffff"
PHONE_VIEWPORT = {"width": 390, "height": 844}
# Null bytes make the ingestor record the file as binary, so it fails for sure.
NOT_A_CSV = bytes(range(256)) * 16


def _query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def _column_values(page: Page, column: str) -> list[str]:
    """Return the text of `column`'s cells in the rows of #preview, found by its sort link."""
    headers = page.locator("#preview thead th")
    names = [headers.nth(index).locator("a.sort-link").get_attribute("data-column") for index in range(headers.count())]
    assert column in names, f"#preview has no sort link for {column!r}; its headers link {names}"
    position = names.index(column)
    rows = page.locator("#preview tbody tr")
    return [rows.nth(index).locator("td").nth(position).inner_text().strip() for index in range(rows.count())]


def _click_and_wait(browsing: Browsing, target: Locator, label: str) -> None:
    """Click a link or button that loads a new page, wait for it, and save a screenshot."""
    with browsing.page.expect_navigation(timeout=WAIT_MS):
        target.click(timeout=WAIT_MS)
    browsing.shot(label)


def _open_project(browsing: Browsing) -> None:
    """Go from the list of projects to the penguins project page."""
    if urlsplit(browsing.page.url).path != "/":
        browsing.goto("/", "projects")
    link = browsing.page.locator("ul#projects > li.project > a.project-link", has_text=PENGUINS_NAME)
    expect(link).to_have_count(1, timeout=WAIT_MS)
    assert link.get_attribute("href") == f"/projects/{PENGUINS_PROJECT_ID}"
    _click_and_wait(browsing, link, "project")


def _open_collection(browsing: Browsing, tag: str = "physical_features") -> None:
    _open_project(browsing)
    link = browsing.page.locator("#collections tr.collection a.collection-link", has_text=tag)
    expect(link).to_have_count(1, timeout=WAIT_MS)
    _click_and_wait(browsing, link, "collection")


def test_browser_reads_health(browse: BrowseFactory) -> None:
    browsing = browse()

    browsing.goto("/health", "health")

    assert json.loads(browsing.page.inner_text("body"))["status"] == "healthy"


def test_wrong_password_shows_error(browse: BrowseFactory) -> None:
    browsing = browse()
    browsing.goto("/login", "login")
    browsing.fill_login_form(ADMIN_EMAIL, "not-the-password")

    with browsing.page.expect_response(lambda response: response.request.method == "POST", timeout=WAIT_MS) as posted:
        browsing.page.click("#sign-in", timeout=WAIT_MS)
    browsing.page.wait_for_load_state("load", timeout=WAIT_MS)
    browsing.shot("wrong-password")

    assert posted.value.status == 401
    expect(browsing.page.locator(".flash.error")).to_be_visible(timeout=WAIT_MS)
    expect(browsing.page.locator("#login-form")).to_have_count(1, timeout=WAIT_MS)
    assert not [cookie for cookie in browsing.context.cookies() if cookie["name"] == "depictiod_session"]


def test_sign_in_returns_to_requested_page(browse: BrowseFactory) -> None:
    browsing = browse()
    project_path = f"/projects/{PENGUINS_PROJECT_ID}"

    browsing.goto(project_path, "redirected-to-login")
    assert urlsplit(browsing.page.url).path == "/login"
    assert _query(browsing.page)["next"] == [project_path]
    browsing.fill_login_form(ADMIN_EMAIL, PASSWORD)
    _click_and_wait(browsing, browsing.page.locator("#sign-in"), "after-sign-in")

    assert urlsplit(browsing.page.url).path == project_path
    expect(browsing.page.locator("h1")).to_have_text(PENGUINS_NAME, timeout=WAIT_MS)
    [session] = [cookie for cookie in browsing.context.cookies() if cookie["name"] == "depictiod_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert "depictiod_session" not in browsing.page.evaluate("document.cookie")

    _click_and_wait(browsing, browsing.page.locator("#sign-out button"), "signed-out")
    assert urlsplit(browsing.page.url).path == "/login"
    browsing.goto(project_path, "after-sign-out")
    assert urlsplit(browsing.page.url).path == "/login"


def test_project_lists_three_runs(signed_in: Browsing) -> None:
    _open_project(signed_in)
    page = signed_in.page

    expect(page.locator("h1")).to_have_text(PENGUINS_NAME, timeout=WAIT_MS)
    expect(page.locator("#nav #nav-projects")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#nav #nav-scans")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("#workflows section.workflow")).to_have_count(1, timeout=WAIT_MS)
    runs = page.locator("#runs table > tbody > tr.run")
    expect(runs).to_have_count(3, timeout=WAIT_MS)
    assert sorted(runs.locator("a.run-link").all_inner_texts()) == PENGUIN_RUNS
    for index in range(3):
        run_id = runs.nth(index).get_attribute("data-run-id")
        assert runs.nth(index).locator("a.run-link").get_attribute("href") == f"/runs/{run_id}"
    tags = page.locator("#collections tr.collection a.collection-link").all_inner_texts()
    assert {"demographic_data", "physical_features"} <= set(tags)


def test_collection_preview_pages_and_sorts(signed_in: Browsing) -> None:
    _open_collection(signed_in)
    page = signed_in.page

    expect(page.locator("h1")).to_have_text("physical_features", timeout=WAIT_MS)
    columns = page.locator("#columns tr.column")
    expect(columns.first).to_be_visible(timeout=WAIT_MS)
    names = [columns.nth(index).get_attribute("data-column") for index in range(columns.count())]
    assert {"individual_id", "bill_length_mm", "body_mass_g"} <= set(names)
    expect(page.locator("#row-range")).to_have_text(f"Rows 1–50 of {PHYSICAL_FEATURES_ROWS}", timeout=WAIT_MS)
    expect(page.locator("#preview tbody tr")).to_have_count(50, timeout=WAIT_MS)

    _click_and_wait(signed_in, page.locator("a#next-page"), "page-2")
    expect(page.locator("#row-range")).to_have_text(f"Rows 51–100 of {PHYSICAL_FEATURES_ROWS}", timeout=WAIT_MS)
    expect(page.locator("#preview tbody tr")).to_have_count(50, timeout=WAIT_MS)
    expect(page.locator("a#first-page")).to_have_count(1, timeout=WAIT_MS)

    _click_and_wait(signed_in, page.locator('#preview a.sort-link[data-column="individual_id"]'), "sorted-up")
    assert _query(page)["sort"] == ["individual_id"]
    ascending = _column_values(page, "individual_id")
    assert ascending == sorted(ascending)
    assert ascending[0] == "adelie_001"

    _click_and_wait(signed_in, page.locator('#preview a.sort-link[data-column="individual_id"]'), "sorted-down")
    assert _query(page)["sort"] == ["-individual_id"]
    descending = _column_values(page, "individual_id")
    assert descending == sorted(descending, reverse=True)
    assert descending[0] == "gentoo_124"

    _click_and_wait(signed_in, page.locator("a#next-page"), "sorted-down-page-2")
    assert _query(page)["sort"] == ["-individual_id"]
    expect(page.locator("#row-range")).to_have_text(f"Rows 51–100 of {PHYSICAL_FEATURES_ROWS}", timeout=WAIT_MS)
    second_page = _column_values(page, "individual_id")
    assert second_page == sorted(second_page, reverse=True)
    assert second_page[0] < descending[-1]


def test_parquet_download_matches_table(signed_in: Browsing, tmp_path: Path) -> None:
    _open_collection(signed_in)
    link = signed_in.page.locator('a.download[data-format="parquet"]')
    expect(link).to_have_count(1, timeout=WAIT_MS)
    href = link.get_attribute("href")
    assert href == f"/depictio/api/v1/datacollections/{PHYSICAL_FEATURES_ID}/export?format=parquet"

    with signed_in.page.expect_download(timeout=WAIT_MS) as started:
        link.click(timeout=WAIT_MS)
    download = started.value
    saved = tmp_path / "physical_features.parquet"
    download.save_as(saved)

    assert download.failure() is None
    table = pyarrow.parquet.read_table(saved)
    shape = signed_in.server.api_get(f"/deltatables/shape/{PHYSICAL_FEATURES_ID}")
    assert table.num_rows == shape["num_rows"] == PHYSICAL_FEATURES_ROWS
    assert table.num_columns == shape["num_columns"]
    with (signed_in.server.penguins_data / "run_1_adelie" / "physical_features.csv").open(newline="") as source:
        header = next(csv.reader(source))
    assert set(header) <= set(table.column_names)


def test_failed_file_shows_reason(browse: BrowseFactory, fresh_server: WebServer, tmp_path: Path) -> None:
    browsing = browse(server=fresh_server)
    browsing.sign_in()
    (fresh_server.penguins_data / "run_2_chinstrap" / "physical_features.csv").write_bytes(NOT_A_CSV)
    _open_project(browsing)
    link = browsing.page.locator("#runs tr.run a.run-link", has_text="run_2_chinstrap")
    _click_and_wait(browsing, link, "run")
    expect(browsing.page.locator("h1")).to_have_text("run_2_chinstrap", timeout=WAIT_MS)

    # The page may have been served before the rescan; reload until the failure shows.
    failed = browsing.page.locator('#files tr.file[data-status="failed"] .file-error')
    deadline = time.monotonic() + INGEST_WAIT_MS / 1000
    while failed.count() == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        browsing.page.reload(timeout=WAIT_MS)
    browsing.shot("run-with-failed-file")

    expect(failed).to_have_count(1, timeout=WAIT_MS)
    report = fresh_server.api_get(f"/projects/ingestion-report/{PENGUINS_PROJECT_ID}")
    reasons = [failure["reason"] for collection in report["data_collections"] for failure in collection["failures"]]
    assert len(reasons) == 1
    assert "NUL bytes" in reasons[0]
    assert reasons[0] in failed.inner_text()
    expect(browsing.page.locator('#files tr.file[data-status="aggregated"]')).to_have_count(1, timeout=WAIT_MS)
    expect(browsing.page.locator("#run-status")).to_be_visible(timeout=WAIT_MS)
    expect(browsing.page.locator("#parameters")).to_be_visible(timeout=WAIT_MS)
    for download_link in browsing.page.locator("#files tr.file a.file-download").all():
        assert re.fullmatch(r"/depictio/api/v1/files/[^/]+/content", download_link.get_attribute("href") or "")

    # The session cookie authenticates the API route of the run archive.
    with browsing.page.expect_download(timeout=WAIT_MS) as started:
        browsing.page.click("a#run-archive", timeout=WAIT_MS)
    archive = tmp_path / "run.zip"
    started.value.save_as(archive)
    with zipfile.ZipFile(archive) as opened:
        names = [Path(name).name for name in opened.namelist()]
    assert sorted(names) == ["demographic_data.csv", "physical_features.csv"]

    _click_and_wait(browsing, browsing.page.locator("#nav-scans"), "scans")
    expect(browsing.page.locator("tr.scan").first).to_be_visible(timeout=WAIT_MS)
    expect(browsing.page.locator("#failed-files li.file-error")).to_have_count(1, timeout=WAIT_MS)
    assert reasons[0] in browsing.page.locator("#failed-files li.file-error").inner_text()


def test_new_run_appears_without_reload(browse: BrowseFactory, fresh_server: WebServer, tmp_path: Path) -> None:
    browsing = browse(server=fresh_server)
    browsing.sign_in()
    _open_project(browsing)
    page = browsing.page
    expect(page.locator("tr.run")).to_have_count(3, timeout=WAIT_MS)
    expect(page.locator("main#content")).to_have_attribute("data-live", "1", timeout=WAIT_MS)
    expect(page.locator("body")).to_have_attribute("data-live-state", "open", timeout=WAIT_MS)
    page.evaluate("window.__marker = 1")
    refreshed_before = int(page.locator("body").get_attribute("data-refreshed") or "0")

    # Copied beside the data folder and moved in with one rename, so that no file is read half-written.
    staged = tmp_path / "run_4_copy"
    shutil.copytree(fresh_server.penguins_data / "run_1_adelie", staged)
    os.rename(staged, fresh_server.penguins_data / "run_4_copy")

    new_run = page.locator("tr.run a.run-link", has_text="run_4_copy")
    expect(new_run).to_have_count(1, timeout=INGEST_WAIT_MS)
    browsing.shot("project-with-new-run")
    expect(page.locator("tr.run")).to_have_count(4, timeout=WAIT_MS)
    assert page.evaluate("window.__marker") == 1
    assert int(page.locator("body").get_attribute("data-refreshed") or "0") > refreshed_before


def test_pages_read_without_javascript(browse: BrowseFactory) -> None:
    browsing = browse(java_script_enabled=False)
    browsing.sign_in()

    _open_project(browsing)
    expect(browsing.page.locator("tr.run")).to_have_count(3, timeout=WAIT_MS)
    # The script would open the event stream at once; without it the state stays as served.
    assert browsing.page.locator("body").get_attribute("data-live-state") != "open"
    link = browsing.page.locator("#collections tr.collection a.collection-link", has_text="physical_features")
    _click_and_wait(browsing, link, "collection")
    expect(browsing.page.locator("#row-range")).to_have_text(f"Rows 1–50 of {PHYSICAL_FEATURES_ROWS}", timeout=WAIT_MS)
    _click_and_wait(browsing, browsing.page.locator("a#next-page"), "page-2")

    expect(browsing.page.locator("#row-range")).to_have_text(
        f"Rows 51–100 of {PHYSICAL_FEATURES_ROWS}", timeout=WAIT_MS
    )
    expect(browsing.page.locator("#preview tbody tr")).to_have_count(50, timeout=WAIT_MS)
    assert browsing.page.locator("body").get_attribute("data-refreshed") == "0"


def test_phone_has_no_page_scroll(browse: BrowseFactory) -> None:
    browsing = browse(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True, device_scale_factor=2)
    browsing.sign_in()
    page = browsing.page

    for label, path in (
        ("project", f"/projects/{PENGUINS_PROJECT_ID}"),
        ("collection", f"/collections/{PHYSICAL_FEATURES_ID}"),
    ):
        browsing.goto(path, f"phone-{label}")
        expect(page.locator("main#content")).to_be_visible(timeout=WAIT_MS)
        # Without the viewport meta tag a mobile browser lays the page out 980 px wide.
        assert page.evaluate("window.innerWidth") == PHONE_VIEWPORT["width"], label
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= page.evaluate("window.innerWidth"), f"{label}: the page scrolls sideways"


def test_viewer_gets_404_for_private_project(browse: BrowseFactory, server: WebServer) -> None:
    email, password = "viewer@example.org", "viewer-password-for-web"
    server.register(email, password)
    viewer = browse()
    viewer.sign_in(email, password)

    listed = viewer.page.locator("ul#projects a.project-link").all_inner_texts()
    assert PENGUINS_NAME in listed
    assert not [name for name in listed if "Iris" in name]
    messages = {}
    for label, identifier in (("project", IRIS_PROJECT_ID), ("collection", IRIS_COLLECTION_ID)):
        viewer.goto(f"/{label}s/{identifier}", f"viewer-{label}", status=404)
        expect(viewer.page.locator(".flash.error")).to_be_visible(timeout=WAIT_MS)
        assert viewer.page.evaluate("document.contentType") == "text/html"
        messages[label] = viewer.page.locator(".flash.error").inner_text().replace(identifier, "ID")

    # A project that does not exist gets the same page, so the 404 does not tell that iris exists.
    viewer.goto(f"/projects/{UNKNOWN_ID}", "viewer-unknown-project", status=404)
    assert viewer.page.locator(".flash.error").inner_text().replace(UNKNOWN_ID, "ID") == messages["project"]

    admin = browse()
    admin.sign_in()
    admin.goto(f"/projects/{IRIS_PROJECT_ID}", "admin-project")
    expect(admin.page.locator("h1")).to_have_text("Iris (bundled example)", timeout=WAIT_MS)
