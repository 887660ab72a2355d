"""The throwaway PostgreSQL cluster of the tests: loopback only, password required, removed at the end."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests import postgres
from tests.postgres import PostgresCluster, PostgresUnavailableError, running_cluster


def test_cluster_listens_on_loopback_only(postgres_cluster: PostgresCluster) -> None:
    assert postgres_cluster.psql("SHOW listen_addresses").strip() == "127.0.0.1"
    assert postgres_cluster.psql("SHOW port").strip() == str(postgres_cluster.port)


def test_cluster_socket_in_its_folder(postgres_cluster: PostgresCluster) -> None:
    assert postgres_cluster.psql("SHOW unix_socket_directories").strip() == str(postgres_cluster.folder)


def test_cluster_rejects_wrong_password(postgres_cluster: PostgresCluster) -> None:
    wrong = postgres_cluster.dsn().replace(postgres_cluster.password, "wrong-password")
    completed = subprocess.run(
        [str(postgres_cluster.binaries / "psql"), "-X", "-d", wrong, "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode != 0
    assert "password authentication failed" in completed.stderr


def test_databases_are_separate(postgres_cluster: PostgresCluster, postgres_database: str) -> None:
    postgres_cluster.psql("CREATE TABLE marker (n integer)", dbname=postgres_database)
    other = postgres_cluster.create_database()
    try:
        tables = postgres_cluster.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'marker'", dbname=other)
        assert tables.strip() == "0"
    finally:
        postgres_cluster.drop_database(other)


def test_cluster_removed_after_error() -> None:
    clusters: list[PostgresCluster] = []
    with pytest.raises(RuntimeError, match="test body failed"), running_cluster() as cluster:
        clusters.append(cluster)
        raise RuntimeError("test body failed")
    assert clusters
    assert not clusters[0].folder.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((clusters[0].host, clusters[0].port), timeout=5).close()


def test_missing_binaries_name_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(postgres, "DEBIAN_BINARIES", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PostgresUnavailableError, match="install the Debian package postgresql"):
        postgres.find_binaries()
