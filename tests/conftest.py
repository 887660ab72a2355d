"""Fixtures shared by every test folder: a throwaway PostgreSQL cluster (see tests/postgres.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import backends
from tests.postgres import REQUIRE_POSTGRES_VARIABLE, PostgresCluster, PostgresUnavailableError, running_cluster


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """Yield one PostgreSQL cluster for the whole session; stopped and removed at its end.

    Skips the test when PostgreSQL is not installed, unless DEPICTIOD_REQUIRE_POSTGRES=1
    (set by .ci/run), which makes that a failure.
    """
    try:
        with running_cluster() as cluster:
            yield cluster
    except PostgresUnavailableError as error:
        if os.environ.get(REQUIRE_POSTGRES_VARIABLE) == "1":
            pytest.fail(f"{error}; {REQUIRE_POSTGRES_VARIABLE}=1 makes this a failure rather than a skip")
        pytest.skip(str(error))


@pytest.fixture
def postgres_database(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """Yield the name of a new, empty database in the session's cluster; dropped after the test."""
    name = postgres_cluster.create_database()
    yield name
    postgres_cluster.drop_database(name)


@pytest.fixture(scope="session", autouse=True)
def lake_backend(request: pytest.FixtureRequest) -> None:
    """With DEPICTIOD_TEST_BACKEND=ducklake, give the catalogs of the tests a DuckLake database to attach."""
    if backends.backend() != "ducklake":
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    backends.use_lake_dsn(cluster.dsn(cluster.create_database("lake")))
