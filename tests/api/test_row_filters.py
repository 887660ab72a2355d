"""Filters on the preview and unique values of a table: bound values, checked names, 400 for the rest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api import create_app
from config import load_projects, load_settings
from tests.api.conftest import ADMIN_PASSWORD, API, login
from tests.examples import BUNDLED_PHYSICAL_FEATURES_ID, copy_bundled_examples, write_settings

PREVIEW = f"{API}/deltatables/preview/{BUNDLED_PHYSICAL_FEATURES_ID}"
UNIQUE = f"{API}/deltatables/unique_values/{BUNDLED_PHYSICAL_FEATURES_ID}"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("filters")
    write_settings(root, list(copy_bundled_examples(root)))
    settings = load_settings(str(root / "depictio.toml"), environ={})
    with TestClient(create_app(settings, load_projects(settings.projects), admin_password=ADMIN_PASSWORD)) as client:
        yield client


@pytest.fixture(scope="module")
def admin(client: TestClient) -> dict[str, str]:
    return login(client, "admin@example.org", ADMIN_PASSWORD)


def rows(client: TestClient, admin: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    response = client.get(PREVIEW, params={"limit": 1000, **query}, headers=admin)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["rows"]
    return found


def test_comparisons_combine_with_and(client: TestClient, admin: dict[str, str]) -> None:
    everything = rows(client, admin)
    heavy_adelie = rows(client, admin, body_mass_g__ge="4000", depictio_run_id__eq="run_1_adelie")

    expected = [
        row for row in everything if row["body_mass_g"] is not None and row["body_mass_g"] >= 4000
        and row["depictio_run_id"] == "run_1_adelie"
    ]  # fmt: skip
    assert heavy_adelie == expected
    assert 0 < len(heavy_adelie) < len(everything)


def test_text_in_and_null_filters(client: TestClient, admin: dict[str, str]) -> None:
    everything = rows(client, admin)

    starts = rows(client, admin, individual_id__startswith="gentoo_00")
    contains = rows(client, admin, individual_id__contains="stra")
    listed = rows(client, admin, individual_id__in="adelie_001,gentoo_002")
    missing = rows(client, admin, body_mass_g__isnull="true")
    present = rows(client, admin, body_mass_g__isnull="false")

    assert {row["individual_id"] for row in starts} == {f"gentoo_00{n}" for n in range(1, 10)}
    assert all("stra" in row["individual_id"] for row in contains)
    assert contains
    assert sorted(row["individual_id"] for row in listed) == ["adelie_001", "gentoo_002"]
    assert all(row["body_mass_g"] is None for row in missing)
    assert len(missing) + len(present) == len(everything)


@pytest.mark.parametrize(
    "value",
    ["x' OR '1'='1", "1; DROP TABLE users; --", "' UNION SELECT password_hash FROM users --", 'a"b', "--"],
)
def test_values_are_data_never_sql(client: TestClient, admin: dict[str, str], value: str) -> None:
    assert rows(client, admin, individual_id__eq=value) == []
    assert rows(client, admin, individual_id__contains=value) == []
    response = client.get(PREVIEW, params={"body_mass_g__eq": value}, headers=admin)
    assert response.status_code == 400
    assert "is not a whole number" in response.json()["detail"]
    assert client.app.state.catalog.users.count() > 0


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({'individual_id" OR 1=1 --__eq': "x"}, "unknown column"),
        ({"body_mass_g__like": "4%"}, "unknown parameter"),
        ({"offset": "10"}, "unknown parameter"),
        ({"body_mass_g__isnull": "maybe"}, "true or false"),
        ({"body_mass_g__in": ",".join(["1"] * 1001)}, "1001 values"),
    ],
)
def test_bad_filters_are_400(client: TestClient, admin: dict[str, str], query: dict[str, str], named: str) -> None:
    response = client.get(PREVIEW, params=query, headers=admin)

    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]


def test_unique_values_sorted_and_filtered(client: TestClient, admin: dict[str, str]) -> None:
    runs = client.get(UNIQUE, params={"column": "depictio_run_id"}, headers=admin)
    heavy = client.get(UNIQUE, params={"column": "depictio_run_id", "body_mass_g__gt": "5500"}, headers=admin)
    limited = client.get(UNIQUE, params={"column": "individual_id", "limit": 2}, headers=admin)
    unknown = client.get(UNIQUE, params={"column": "no_such_column"}, headers=admin)

    assert runs.json() == {"column": "depictio_run_id", "values": ["run_1_adelie", "run_2_chinstrap", "run_3_gentoo"]}
    assert heavy.json()["values"] == ["run_3_gentoo"]
    assert limited.json()["values"] == ["adelie_001", "adelie_002"]
    assert unknown.status_code == 400


def test_filters_need_read_access(client: TestClient) -> None:
    response = client.get(UNIQUE, params={"column": "depictio_run_id"})

    assert response.status_code == 401


ROWS = f"{API}/datacollections/{BUNDLED_PHYSICAL_FEATURES_ID}/rows"


def walk(client: TestClient, admin: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    """Read every page of /rows, following `next`."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, **({"next": cursor} if cursor else {})}
        response = client.get(ROWS, params=params, headers=admin)
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["rows"]
        cursor = body["next"]
        if cursor is None:
            return found


def test_pages_cover_every_row_once_in_sort_order(client: TestClient, admin: dict[str, str]) -> None:
    everything = rows(client, admin)

    paged = walk(client, admin, sort="-body_mass_g,individual_id", limit=7)

    assert len(paged) == len(everything)
    assert sorted(row["depictio_file_id"] + row["individual_id"] for row in paged) == sorted(
        row["depictio_file_id"] + row["individual_id"] for row in everything
    )
    masses = [row["body_mass_g"] for row in paged]
    known = [mass for mass in masses if mass is not None]
    assert known == sorted(known, reverse=True)
    assert masses[len(known) :] == [None] * (len(masses) - len(known))


def test_projection_filters_and_total(client: TestClient, admin: dict[str, str]) -> None:
    response = client.get(
        ROWS,
        params={
            "columns": "individual_id,body_mass_g",
            "depictio_run_id__eq": "run_3_gentoo",
            "total": "true",
            "limit": 5,
        },
        headers=admin,
    )

    body = response.json()
    assert body["columns"] == ["individual_id", "body_mass_g"]
    assert all(set(row) == {"individual_id", "body_mass_g"} for row in body["rows"])
    assert body["total"] == len(rows(client, admin, depictio_run_id__eq="run_3_gentoo"))
    assert len(body["rows"]) == 5


def test_cursor_stays_valid_while_rows_are_added(client: TestClient, admin: dict[str, str]) -> None:
    first = client.get(ROWS, params={"limit": 50}, headers=admin).json()
    seen = [row["depictio_file_id"] + row["individual_id"] for row in first["rows"]]
    project = client.app.state.ingestor.projects[0]
    location = project.workflows[0].data_location.locations[0]
    new_run = Path(location) / "run_4_added"
    new_run.mkdir()
    (new_run / "physical_features.csv").write_text(
        "individual_id,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\nadded_001,40.0,18.0,190,4000\n"
    )
    client.app.state.ingestor.rescan_workflow(project.workflows[0].id, trigger="api")
    try:
        rest = walk(client, admin, limit=50, next=first["next"])
        keys = seen + [row["depictio_file_id"] + row["individual_id"] for row in rest]
        everything = rows(client, admin)
        assert sorted(keys) == sorted(row["depictio_file_id"] + row["individual_id"] for row in everything)
        assert "added_001" in {row["individual_id"] for row in rest}
    finally:
        (new_run / "physical_features.csv").unlink()
        new_run.rmdir()
        client.app.state.ingestor.rescan_workflow(project.workflows[0].id, trigger="api")


def add_run(client: TestClient, name: str, text: str) -> Path:
    """Write a run with one physical_features file into the bundled workflow and rescan it."""
    project = client.app.state.ingestor.projects[0]
    run = Path(project.workflows[0].data_location.locations[0]) / name
    run.mkdir()
    (run / "physical_features.csv").write_text(
        "individual_id,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\n" + text
    )
    client.app.state.ingestor.rescan_workflow(project.workflows[0].id, trigger="api")
    return run


def remove_run(client: TestClient, run: Path) -> None:
    (run / "physical_features.csv").unlink()
    run.rmdir()
    project = client.app.state.ingestor.projects[0]
    client.app.state.ingestor.rescan_workflow(project.workflows[0].id, trigger="api")


def key(row: dict[str, Any]) -> str:
    return f"{row['depictio_file_id']}/{row['individual_id']}"


def test_cursor_survives_removed_run(client: TestClient, admin: dict[str, str]) -> None:
    # A checkpoint that compacts deleted rows renumbers the rows after them. DuckDB compacts
    # whole row groups (122,880 rows by default), so the removed run is larger than one.
    removed = add_run(client, "run_5_removed", "".join(f"removed_{n},40.0,18.0,190,4000\n" for n in range(130_000)))
    kept_run = add_run(client, "run_6_kept", "".join(f"kept_{n:03},40.0,18.0,190,4000\n" for n in range(50)))
    try:
        first = client.get(ROWS, params={"limit": 10, "individual_id__startswith": "kept_"}, headers=admin).json()
        remove_run(client, removed)

        rest = walk(client, admin, limit=10, individual_id__startswith="kept_", next=first["next"])

        names = [row["individual_id"] for row in first["rows"] + rest]
        assert names == [f"kept_{n:03}" for n in range(50)]
    finally:
        remove_run(client, kept_run)


def test_cursor_at_removed_file_409(client: TestClient, admin: dict[str, str]) -> None:
    extra = add_run(client, "run_8_removed", "".join(f"removed_{n:03},40.0,18.0,190,4000\n" for n in range(20)))
    try:
        page = client.get(ROWS, params={"limit": 5, "individual_id__startswith": "removed_"}, headers=admin).json()
    finally:
        remove_run(client, extra)

    response = client.get(
        ROWS, params={"limit": 5, "individual_id__startswith": "removed_", "next": page["next"]}, headers=admin
    )

    assert response.status_code == 409
    assert "start again without a cursor" in response.json()["detail"]


def test_cursor_of_other_query_rejected(client: TestClient, admin: dict[str, str]) -> None:
    page = client.get(ROWS, params={"limit": 5, "sort": "body_mass_g"}, headers=admin).json()

    for other in ({"sort": "-body_mass_g"}, {"sort": "body_mass_g", "body_mass_g__gt": "3000"}):
        response = client.get(ROWS, params={"limit": 5, "next": page["next"], **other}, headers=admin)
        assert response.status_code == 400
        assert "another collection, filter or sort order" in response.json()["detail"]


def test_nan_sorted_pages_cover_rows(client: TestClient, admin: dict[str, str]) -> None:
    values = ["nan", "inf", "-inf", "nan", "", "1e308", "nan"]
    extra = add_run(client, "run_7_floats", "".join(f"float_{n},{v},18.0,190,4000\n" for n, v in enumerate(values)))
    try:
        for sort in ("bill_length_mm,individual_id", "-bill_length_mm", "bill_length_mm"):
            paged = walk(client, admin, sort=sort, limit=3)
            assert sorted(key(row) for row in paged) == sorted(key(row) for row in rows(client, admin))
    finally:
        remove_run(client, extra)


def test_integer_filters_reject_fractions(client: TestClient, admin: dict[str, str]) -> None:
    for name in ("body_mass_g__eq", "body_mass_g__gt", "body_mass_g__in"):
        response = client.get(ROWS, params={name: "3750.5"}, headers=admin)
        assert response.status_code == 400
        assert "not a whole number" in response.json()["detail"]
    assert client.get(ROWS, params={"body_mass_g__gt": " +3750 "}, headers=admin).status_code == 200


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"sort": 'body_mass_g" DESC; --'}, "unknown column"),
        ({"columns": "individual_id,individual_id"}, "listed twice"),
        ({"columns": "individual_id,password_hash"}, "unknown column"),
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"next": "not-a-cursor"}, "next"),
        ({"total": "perhaps"}, "total"),
        ({"limit": ["5", "6"]}, "limit is given more than once"),
    ],
)
def test_bad_row_queries_are_400(client: TestClient, admin: dict[str, str], query: dict[str, Any], named: str) -> None:
    response = client.get(ROWS, params=query, headers=admin)

    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]
