"""GET /metrics and the health probes, on the bundled example through the real app."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api import create_app
from api.readiness import not_ready_reason
from catalog import Catalog
from config import load_projects, load_settings
from ingestor import Ingestor
from tests.api.conftest import ADMIN_PASSWORD, API, login
from tests.examples import (
    BUNDLED_PENGUINS_WORKFLOW_ID,
    BUNDLED_PHYSICAL_FEATURES_ID,
    copy_bundled_examples,
    write_settings,
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
PENGUIN_RUNS = "bundled/penguins/data"
HEADER = "individual_id,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\n"


@contextmanager
def example_app(root: Path, environ: dict[str, str] | None = None) -> Iterator[TestClient]:
    settings = load_settings(str(write_settings(root, copy_bundled_examples(root))), environ=environ or {})
    app = create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)
    with TestClient(app) as client:
        yield client


def scrape(client: TestClient, headers: dict[str, str]) -> Samples:
    """Return every sample of GET /metrics, keyed by name and sorted labels."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum the samples of `name` whose labels include `labels`."""
    return sum(
        value
        for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and set(labels.items()) <= set(sample_labels)
    )


def add_failing_runs(root: Path) -> None:
    """Add three penguin runs whose file fails: empty, not UTF-8, and a broken symbolic link."""
    data = root / PENGUIN_RUNS
    (data / "run_4_empty").mkdir()
    (data / "run_4_empty" / "physical_features.csv").write_bytes(b"")
    (data / "run_5_not_utf8").mkdir()
    (data / "run_5_not_utf8" / "physical_features.csv").write_bytes(HEADER.encode() + b"x1,\xff\xfe,1,2,3\n")
    (data / "run_6_broken_link").mkdir()
    # The target lies in the parent folder of the location, where links may point, but is gone.
    os.symlink(root / "bundled" / "penguins" / "gone.csv", data / "run_6_broken_link" / "physical_features.csv")


def catalog_counts(catalog: Catalog) -> tuple[int, int, int]:
    """Return (aggregated files, rows of those files, failed files) as the catalog records them."""
    row = catalog.store.query_one(
        "SELECT count(*) FILTER (WHERE status = 'aggregated'), "
        "coalesce(sum(row_count) FILTER (WHERE status = 'aggregated'), 0), "
        "count(*) FILTER (WHERE status = 'failed') FROM files"
    )
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_ingest_counters_match_catalog(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    settings_path = write_settings(root, copy_bundled_examples(root))
    add_failing_runs(root)
    settings = load_settings(str(settings_path), environ={})
    app = create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)
    with TestClient(app) as client:
        samples = scrape(client, login(client, "admin@example.org", ADMIN_PASSWORD))
        files, rows, failed = catalog_counts(client.app.state.catalog)

    assert files == 7
    assert failed == 3
    assert total(samples, "depictiod_files_ingested_total") == files
    assert total(samples, "depictiod_rows_ingested_total") == rows
    assert total(samples, "depictiod_file_failures_total") == failed
    assert total(samples, "depictiod_file_failures_total", reason="empty") == 1
    assert total(samples, "depictiod_file_failures_total", reason="format") == 1
    assert total(samples, "depictiod_file_failures_total", reason="link") == 1
    assert total(samples, "depictiod_catalog_files", status="aggregated") == files
    assert total(samples, "depictiod_catalog_files", status="failed") == failed
    assert total(samples, "depictiod_catalog_runs") == 7
    # Three collection tables and the penguins join, each built once.
    assert total(samples, "depictiod_tables_built_total", kind="collection", mode="rebuild") == 3
    assert total(samples, "depictiod_tables_built_total", kind="join") == 1
    assert total(samples, "depictiod_catalog_tables") == 4
    # One scan per workflow: penguins and iris.
    assert total(samples, "depictiod_scans_total", trigger="startup", outcome="finished") == 2
    assert total(samples, "depictiod_scan_duration_seconds_count", trigger="startup") == 2
    assert total(samples, "depictiod_catalog_size_bytes", file="database") > 0
    assert total(samples, "depictiod_ready") == 1


def test_rescan_counts_only_new_file(tmp_path: Path) -> None:
    # Without a watcher, the only rescan is the one the test runs.
    with example_app(tmp_path, {"DEPICTIO_INGEST_WATCH_MODE": "off"}) as client:
        admin = login(client, "admin@example.org", ADMIN_PASSWORD)
        before = scrape(client, admin)
        run = tmp_path / PENGUIN_RUNS / "run_7_new"
        run.mkdir()
        (run / "physical_features.csv").write_text(HEADER + "n1,40.1,18.1,190,3900\nn2,41.2,18.2,191,4000\n")

        client.app.state.ingestor.rescan_workflow(BUNDLED_PENGUINS_WORKFLOW_ID, "event")
        after = scrape(client, admin)

    assert total(after, "depictiod_files_ingested_total") - total(before, "depictiod_files_ingested_total") == 1
    assert total(after, "depictiod_rows_ingested_total") - total(before, "depictiod_rows_ingested_total") == 2
    assert total(after, "depictiod_tables_built_total", kind="collection", mode="update") == 1
    assert total(after, "depictiod_scans_total", trigger="event", outcome="finished") == 1


def test_requests_counted_by_route_template(tmp_path: Path) -> None:
    with example_app(tmp_path) as client:
        admin = login(client, "admin@example.org", ADMIN_PASSWORD)
        missing_id = "f" * 24
        assert client.get(f"{API}/deltatables/preview/{BUNDLED_PHYSICAL_FEATURES_ID}", headers=admin).status_code == 200
        assert client.get(f"{API}/deltatables/preview/{missing_id}", headers=admin).status_code == 404
        assert client.get(f"/no/such/path/{missing_id}").status_code == 404
        assert client.request("BREW", "/health").status_code == 405

        samples = scrape(client, admin)

    route = f"{API}/deltatables/preview/{{data_collection_id}}"
    name = "depictiod_http_requests_total"
    assert total(samples, name, method="GET", route=route, status="200") == 1
    assert total(samples, name, method="GET", route=route, status="404") == 1
    assert total(samples, "depictiod_http_request_duration_seconds_count", method="GET", route=route) == 2
    assert total(samples, name, method="GET", route="unmatched", status="404") == 1
    assert total(samples, name, method="other", status="405") == 1
    # No id or raw path becomes a label value, whatever the request.
    values = {value for _, labels in samples for _, value in labels}
    assert not [value for value in values if missing_id in value or BUNDLED_PHYSICAL_FEATURES_ID in value]
    assert not [value for value in values if value.startswith("/no/such")]


def test_queue_depth_counts_changed_workflows(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    settings_path = write_settings(root, copy_bundled_examples(root))
    # Files last written two hours ago are settled, while a change marked now waits an hour.
    two_hours_ago = time.time() - 7200
    for folder, _, names in os.walk(root / "bundled"):
        for name in names:
            os.utime(Path(folder) / name, (two_hours_ago, two_hours_ago))
    environ = {"DEPICTIO_INGEST_SETTLE_SECONDS": "3600", "DEPICTIO_INGEST_WATCH_MODE": "polling"}
    settings = load_settings(str(settings_path), environ=environ)
    app = create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)
    with TestClient(app) as client:
        admin = login(client, "admin@example.org", ADMIN_PASSWORD)
        before = scrape(client, admin)
        client.app.state.ingestor.watcher.mark_changed(BUNDLED_PENGUINS_WORKFLOW_ID)

        after = scrape(client, admin)

    assert total(before, "depictiod_ingest_queue_depth", queue="changed_workflows") == 0
    assert total(after, "depictiod_ingest_queue_depth", queue="changed_workflows") == 1
    assert total(after, "depictiod_ingest_queue_depth", queue="rescan_requests") == 0
    assert total(after, "depictiod_files_ingested_total") == 7


def test_metrics_public_setting_allows_anonymous(tmp_path: Path) -> None:
    with example_app(tmp_path, {"DEPICTIO_SERVER_METRICS_PUBLIC": "true"}) as client:
        response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "depictiod_files_ingested_total" in response.text


def test_metrics_need_admin_by_default(tmp_path: Path) -> None:
    with example_app(tmp_path) as client:
        anonymous = client.get("/metrics")

    assert anonymous.status_code == 401
    assert set(anonymous.json()) == {"status_code", "detail"}


def test_openmetrics_when_accept_asks(tmp_path: Path) -> None:
    with example_app(tmp_path, {"DEPICTIO_SERVER_METRICS_PUBLIC": "true"}) as client:
        response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


# Accept headers that are malformed, or ask for versions this service does not write, and
# the format each gets. prometheus_client 0.26.0's own negotiation raised TypeError on the
# versions that are not numbers.
HOSTILE_ACCEPT = [
    ("application/openmetrics-text; version=abc", "text/plain; version=0.0.4"),
    ("application/openmetrics-text; version=1.x", "text/plain; version=0.0.4"),
    ("application/openmetrics-text; version=1..0", "text/plain; version=0.0.4"),
    ("application/openmetrics-text; version=999.0.0", "text/plain; version=0.0.4"),
    ("application/openmetrics-text; version=", "text/plain; version=0.0.4"),
    ("text/plain; version=abc", "text/plain; version=0.0.4"),
    ("text/plain; version=1.0.0; escaping=bogus", "text/plain; version=0.0.4"),
    (";;;,,,=;", "text/plain; version=0.0.4"),
    ("application/openmetrics-text; version=abc, application/openmetrics-text", "application/openmetrics-text"),
    ('APPLICATION/OpenMetrics-Text; Version="1.0.0"', "application/openmetrics-text"),
]


def test_hostile_accept_gets_a_format(tmp_path: Path) -> None:
    with example_app(tmp_path, {"DEPICTIO_SERVER_METRICS_PUBLIC": "true"}) as client:
        responses = [
            (accept, expected, client.get("/metrics", headers={"Accept": accept}))
            for accept, expected in HOSTILE_ACCEPT
        ]

    for accept, expected, response in responses:
        assert response.status_code == 200, (accept, response.text)
        assert response.headers["content-type"].startswith(expected), accept
        assert "depictiod_files_ingested_total" in response.text, accept


def test_two_apps_count_apart(tmp_path: Path) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    environ = {"DEPICTIO_SERVER_METRICS_PUBLIC": "true"}
    with example_app(tmp_path / "first", environ) as first, example_app(tmp_path / "second", environ) as second:
        for _ in range(3):
            first.get("/health/live")
        second.get("/health/live")

        first_samples = scrape(first, {})
        second_samples = scrape(second, {})

    name = "depictiod_http_requests_total"
    assert total(first_samples, name, route="/health/live") == 3
    assert total(second_samples, name, route="/health/live") == 1


def test_ready_is_503_while_catalog_unwritable(tmp_path: Path) -> None:
    with example_app(tmp_path, {"DEPICTIO_SERVER_METRICS_PUBLIC": "true"}) as client:
        ingestor: Ingestor = client.app.state.ingestor
        ready_before = client.get("/health/ready")
        ingestor.status.write_error = "the disk is full"

        ready = client.get("/health/ready")
        live = client.get("/health/live")
        health = client.get("/health")
        samples = scrape(client, {})
        ingestor.status.write_error = None
        ready_after = client.get("/health/ready")

    assert ready_before.status_code == 200
    assert ready_before.json()["status"] == "ready"
    assert ready.status_code == 503
    assert ready.json() == {
        "status_code": 503,
        "detail": "not ready: the catalog cannot be written, so ingestion is paused; see the service log",
    }
    assert live.status_code == 200
    assert live.json()["status"] == "alive"
    # Reads keep working, so /health stays 200 as before the probes existed.
    assert health.status_code == 200
    assert total(samples, "depictiod_ready") == 0
    assert ready_after.status_code == 200


def test_ready_is_503_when_catalog_unreadable(tmp_path: Path) -> None:
    with example_app(tmp_path) as client:
        client.app.state.catalog.store.close()

        ready = client.get("/health/ready")
        live = client.get("/health/live")

    assert ready.status_code == 503
    assert ready.json()["detail"] == "not ready: the catalog cannot be read"
    assert live.status_code == 200


def test_ready_once_background_start_finishes(tmp_path: Path) -> None:
    settings = load_settings(str(write_settings(tmp_path, copy_bundled_examples(tmp_path))), environ={})
    catalog = Catalog(settings.catalog.path, settings.catalog)
    ingestor = Ingestor(catalog, settings, load_projects(settings.projects))
    try:
        before_start = not_ready_reason(catalog, ingestor)
        ingestor.start_in_background()
        deadline = time.monotonic() + 60
        while ingestor.status.startup == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        after_scan = not_ready_reason(catalog, ingestor)
        table = catalog.tables.get(BUNDLED_PHYSICAL_FEATURES_ID)
        ingestor.stop()
        after_stop = not_ready_reason(catalog, ingestor)
    finally:
        catalog.close()

    assert before_start == "the start-up scan has not finished"
    assert after_scan is None
    assert table is not None
    assert table.row_count == 344
    assert after_stop == "the service is stopping"


def test_stop_during_background_start_leaves_no_thread(tmp_path: Path) -> None:
    settings = load_settings(str(write_settings(tmp_path, copy_bundled_examples(tmp_path))), environ={})
    catalog = Catalog(settings.catalog.path, settings.catalog)
    ingestor = Ingestor(catalog, settings, load_projects(settings.projects))
    try:
        ingestor.start_in_background()
        ingestor.stop()
        threads = [thread.name for thread in threading.enumerate()]
    finally:
        catalog.close()

    assert "ingest-start" not in threads
    assert ingestor.watcher is None
    assert not [name for name in threads if name.startswith(("ingest-reconcile", "ingest-settle", "APScheduler"))]
