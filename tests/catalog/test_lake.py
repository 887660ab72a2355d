"""The DuckLake backend of the catalog, on the session's throwaway PostgreSQL cluster."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from catalog import Catalog, CatalogError
from config import CatalogSettings, ConfigError, load_settings
from tests.examples import copy_bundled_examples, write_settings
from tests.postgres import PostgresCluster


def _settings(cluster: PostgresCluster, database: str, folder: Path, name: str = "catalog.duckdb") -> CatalogSettings:
    return CatalogSettings(
        path=str(folder / name),
        backend="ducklake",
        postgres=cluster.dsn(database),
        data_path=str(folder / "lake-data"),
    )


def test_two_processes_share_one_catalog(
    postgres_cluster: PostgresCluster, postgres_database: str, tmp_path: Path
) -> None:
    first = Catalog(str(tmp_path / "a.duckdb"), _settings(postgres_cluster, postgres_database, tmp_path, "a.duckdb"))
    second = Catalog(str(tmp_path / "b.duckdb"), _settings(postgres_cluster, postgres_database, tmp_path, "b.duckdb"))
    try:
        first.store.write(lambda connection: connection.execute("INSERT INTO catalog_meta VALUES ('shared', 'yes')"))

        assert second.store.query("SELECT value FROM catalog_meta WHERE key = 'shared'") == [("yes",)]
    finally:
        first.close()
        second.close()


def test_concurrent_writes_never_duplicate(
    postgres_cluster: PostgresCluster, postgres_database: str, tmp_path: Path
) -> None:
    # Both writers delete then insert the same key, as the repositories keep keys unique.
    writers = [
        Catalog(
            str(tmp_path / f"{name}.duckdb"), _settings(postgres_cluster, postgres_database, tmp_path, f"{name}.duckdb")
        )
        for name in ("a", "b")
    ]

    def upsert(catalog: Catalog, value: str) -> None:
        for _ in range(10):
            catalog.store.write(
                lambda connection: (
                    connection.execute("DELETE FROM catalog_meta WHERE key = 'counter'"),
                    connection.execute("INSERT INTO catalog_meta VALUES ('counter', ?)", [value]),
                )
            )

    try:
        threads = [
            threading.Thread(target=upsert, args=(catalog, name)) for catalog, name in zip(writers, "ab", strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        rows = writers[0].store.query("SELECT value FROM catalog_meta WHERE key = 'counter'")
    finally:
        for catalog in writers:
            catalog.close()

    assert len(rows) == 1


def test_attach_error_hides_the_password(
    postgres_cluster: PostgresCluster, postgres_database: str, tmp_path: Path
) -> None:
    settings = _settings(postgres_cluster, postgres_database, tmp_path)
    wrong = settings.postgres.replace(f"password={postgres_cluster.password}", "password=not-the-secret-123")

    with pytest.raises(CatalogError) as raised:
        Catalog(settings.path, CatalogSettings(**{**_fields(settings), "postgres": wrong}))

    assert "not-the-secret-123" not in str(raised.value)
    assert "catalog.postgres" in str(raised.value)


def test_catalog_sql_reads_no_other_file(
    postgres_cluster: PostgresCluster, postgres_database: str, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    catalog = Catalog(str(tmp_path / "catalog.duckdb"), _settings(postgres_cluster, postgres_database, tmp_path))
    try:
        with pytest.raises(Exception, match="disabled by configuration"):
            catalog.store.query(f"SELECT * FROM read_csv('{outside}')")
    finally:
        catalog.close()


def test_maintenance_keeps_the_tables(
    postgres_cluster: PostgresCluster, postgres_database: str, tmp_path: Path
) -> None:
    catalog = Catalog(str(tmp_path / "catalog.duckdb"), _settings(postgres_cluster, postgres_database, tmp_path))
    try:
        for value in range(5):
            catalog.store.write(
                lambda connection, value=value: connection.execute(
                    "INSERT INTO catalog_meta VALUES ('m', ?)", [str(value)]
                )
            )
        catalog.store._last_maintenance = 0.0
        catalog.store.checkpoint()

        assert catalog.store.query("SELECT count(*) FROM catalog_meta WHERE key = 'm'") == [(5,)]
    finally:
        catalog.close()


@pytest.mark.parametrize("missing", ["postgres", "data_path"])
def test_ducklake_settings_need_connection_and_path(tmp_path: Path, missing: str) -> None:
    penguins, iris = copy_bundled_examples(tmp_path)
    path = write_settings(tmp_path, [penguins, iris])
    values = {"postgres": "dbname=x host=127.0.0.1", "data_path": str(tmp_path / "lake")}
    values.pop(missing)
    lines = "".join(f'{key} = "{value}"\n' for key, value in values.items())
    # On the DuckLake pass of the tests, write_settings writes the lake's keys already.
    lake_keys = ("backend =", "postgres =", "data_path =", "metadata_schema =")
    text = "".join(line for line in path.read_text().splitlines(keepends=True) if not line.startswith(lake_keys))
    path.write_text(text.replace("[catalog]\n", f'[catalog]\nbackend = "ducklake"\n{lines}'))

    with pytest.raises(ConfigError) as raised:
        load_settings(str(path))

    assert f"catalog.{missing}" in str(raised.value)


def test_roles_need_the_ducklake_backend(tmp_path: Path) -> None:
    penguins, iris = copy_bundled_examples(tmp_path)
    path = write_settings(tmp_path, [penguins, iris])
    text = path.read_text()
    if 'backend = "ducklake"' in text:
        pytest.skip("this run uses the ducklake backend for every catalog")

    result = subprocess.run(
        [sys.executable, "-m", "depictiod", "serve", "--config", str(path), "--role", "api"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert 'needs catalog.backend = "ducklake"' in result.stderr


def _fields(settings: CatalogSettings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in settings.__struct_fields__}
