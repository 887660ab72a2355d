"""Persisted joins: built in DuckDB after their sides' tables change, and kept in step with them."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from catalog.row_filters import RowsQuery, StaleCursorError
from tests.examples import REPOSITORY, copy_examples, shared_examples_available
from tests.ingestor.helpers import Harness, table_collection, write_file

BUNDLED_JOIN_ID = "6a0001000000000000000005"
SHARED_JOIN_ID = "646b0f3c1e4a2d7f8e5b8ca1"
PHYSICAL_COLUMNS = ["individual_id", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
DEMOGRAPHIC_COLUMNS = ["island", "sex", "year", "species"]
RESERVED_COLUMNS = ["depictio_run_id", "depictio_file_id", "aggregation_time"]


def _join(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "left_dc": "left", "right_dc": "right", "on_columns": ["sample"], **fields}


def _project(
    folder: Path,
    joins: list[dict[str, Any]],
    left_metatype: str = "Aggregate",
    right_metatype: str = "Aggregate",
    right_pattern: str = r"right\.csv$",
) -> Path:
    """Write a project with collections `left` and `right` in workflow `pipeline`, and its joins."""
    left = table_collection("left", r"left\.csv$")
    right = table_collection("right", right_pattern)
    left["config"]["metatype"] = left_metatype
    right["config"]["metatype"] = right_metatype
    (folder / "data").mkdir(exist_ok=True)
    project = {
        "name": "join-test",
        "workflows": [
            {
                "name": "pipeline",
                "engine": {"name": "snakemake"},
                "data_location": {"structure": "sequencing-runs", "runs_regex": "run_.*", "locations": ["data"]},
                "data_collections": [left, right],
            }
        ],
        "joins": [{"workflow_name": "pipeline", **join} for join in joins],
    }
    path = folder / "project.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False), encoding="utf-8")
    return path


class JoinHarness(Harness):
    def join_id(self, name: str) -> str:
        for join in self.project.joins:
            if join.name == name:
                assert join.id is not None
                return join.id
        raise KeyError(name)

    def joined_rows(self, name: str, order_by: str = "ALL") -> list[dict[str, Any]]:
        with self.catalog.store.read() as cursor:
            result = cursor.execute(f'SELECT * FROM data."dc_{self.join_id(name)}" ORDER BY {order_by}')
            names = [column[0] for column in result.description or []]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]

    def joined_types(self, name: str) -> dict[str, str]:
        rows = self.catalog.store.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'data' AND table_name = ? ORDER BY ordinal_position",
            [f"dc_{self.join_id(name)}"],
        )
        return {str(column): str(kind) for column, kind in rows}

    def has_join_table(self, name: str) -> bool:
        return self.catalog.tables.get(self.join_id(name)) is not None


@pytest.fixture
def harnesses() -> Any:
    opened: list[Harness] = []
    yield opened
    for harness in opened:
        harness.close()


def _open(harnesses: list[Harness], folder: Path, project_path: Path, **ingest: Any) -> JoinHarness:
    harness = JoinHarness(folder, project_path, ingest=ingest or None)
    harnesses.append(harness)
    return harness


def test_bundled_penguins_join_has_every_penguin(tmp_path: Path, harnesses: list[Harness]) -> None:
    shutil.copytree(REPOSITORY / "examples", tmp_path / "examples")
    harness = _open(harnesses, tmp_path, tmp_path / "examples" / "penguins" / "project.yaml")

    result = harness.scan()

    assert [(join.collection_id, join.outcome) for join in result.joins] == [(BUNDLED_JOIN_ID, "built")]
    table = harness.catalog.tables.get(BUNDLED_JOIN_ID)
    assert table is not None
    # The bundled files have all 344 penguins on both sides, each matched once.
    assert table.row_count == 344
    columns = [spec.name for spec in harness.catalog.tables.column_specs(BUNDLED_JOIN_ID)]
    assert columns == [*PHYSICAL_COLUMNS, *RESERVED_COLUMNS, *DEMOGRAPHIC_COLUMNS]


def test_penguins_without_measurements_leave_join(tmp_path: Path, harnesses: list[Harness]) -> None:
    # Depictio's own penguins example has no physical_features row for the two penguins
    # without measurements. The inner join then keeps the other 342, with both sides' columns.
    shutil.copytree(REPOSITORY / "examples", tmp_path / "examples")
    for path in (tmp_path / "examples" / "penguins" / "data").glob("run_*/physical_features.csv"):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        path.write_text("".join(line for line in lines if not line.rstrip("\n").endswith(",,,,")), encoding="utf-8")
    harness = _open(harnesses, tmp_path, tmp_path / "examples" / "penguins" / "project.yaml")

    harness.scan()

    table = harness.catalog.tables.get(BUNDLED_JOIN_ID)
    assert table is not None
    assert table.row_count == 342
    columns = [spec.name for spec in harness.catalog.tables.column_specs(BUNDLED_JOIN_ID)]
    assert columns == [*PHYSICAL_COLUMNS, *RESERVED_COLUMNS, *DEMOGRAPHIC_COLUMNS]
    names = {row["individual_id"] for row in harness.joined_rows("penguins_complete")}
    assert len(names) == 342
    assert {"adelie_004", "gentoo_120"}.isdisjoint(names)


def test_depictio_penguins_join_has_342_rows(tmp_path: Path, harnesses: list[Harness]) -> None:
    if not shared_examples_available():
        pytest.skip("the Depictio example outputs are absent; this test needs ../shared/data/depictio-examples")
    penguins = copy_examples(tmp_path)[0]
    harness = _open(harnesses, tmp_path, penguins)

    harness.scan()

    table = harness.catalog.tables.get(SHARED_JOIN_ID)
    assert table is not None
    assert table.row_count == 342
    columns = [spec.name for spec in harness.catalog.tables.column_specs(SHARED_JOIN_ID)]
    assert columns == [*PHYSICAL_COLUMNS, *RESERVED_COLUMNS, *DEMOGRAPHIC_COLUMNS]
    rows = harness.joined_rows("penguins_complete")
    assert all(row["species"] is not None for row in rows)


def test_join_collection_is_registered(tmp_path: Path, harnesses: list[Harness]) -> None:
    shutil.copytree(REPOSITORY / "examples", tmp_path / "examples")
    harness = _open(harnesses, tmp_path, tmp_path / "examples" / "penguins" / "project.yaml")

    record = harness.catalog.projects.collection(BUNDLED_JOIN_ID)

    assert record is not None
    assert record.collection.data_collection_tag == "joined_penguins_complete"
    assert record.collection.config.source == "joined"
    assert record.workflow_id == harness.workflow_id


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("inner", [("b", 2, 20), ("c", 3, 30)]),
        ("left", [("a", 1, None), ("b", 2, 20), ("c", 3, 30)]),
        ("right", [("b", 2, 20), ("c", 3, 30), ("d", None, 40)]),
        ("full", [("a", 1, None), ("b", 2, 20), ("c", 3, 30), ("d", None, 40)]),
        ("outer", [("a", 1, None), ("b", 2, 20), ("c", 3, 30), ("d", None, 40)]),
    ],
)
def test_join_how(tmp_path: Path, harnesses: list[Harness], how: str, expected: list[tuple[Any, ...]]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\na,1\nb,2\nc,3\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\nb,20\nc,30\nd,40\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("both", how=how)]))

    harness.scan()

    rows = harness.joined_rows("both", order_by="sample")
    assert [(row["sample"], row["size"], row["weight"]) for row in rows] == expected
    assert {row["depictio_run_id"] for row in rows} == {"run_1"}


def test_run_tag_is_a_key(tmp_path: Path, harnesses: list[Harness]) -> None:
    for run in ("run_1", "run_2"):
        write_file(tmp_path / "data" / run / "left.csv", f"sample,size\ns1,{run[-1]}\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,site\ns1,north\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("by_run")]))

    harness.scan()

    rows = harness.joined_rows("by_run")
    assert [(row["depictio_run_id"], row["site"]) for row in rows] == [("run_1", "north")]


def test_metadata_side_skips_run_key(tmp_path: Path, harnesses: list[Harness]) -> None:
    for run in ("run_1", "run_2"):
        write_file(tmp_path / "data" / run / "left.csv", f"sample,size\ns1,{run[-1]}\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,site\ns1,north\n")
    project = _project(tmp_path, [_join("metadata")], right_metatype="Metadata")
    harness = _open(harnesses, tmp_path, project)

    harness.scan()

    rows = harness.joined_rows("metadata", order_by="depictio_run_id")
    assert [(row["depictio_run_id"], row["size"], row["site"]) for row in rows] == [
        ("run_1", 1, "north"),
        ("run_2", 2, "north"),
    ]


def test_integer_and_text_keys_join_as_text(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\n1,10\n2,20\n3,30\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,label\n1,one\n2,two\nx,ex\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("typed")]))

    harness.scan()

    assert harness.joined_types("typed")["sample"] == "VARCHAR"
    rows = harness.joined_rows("typed", order_by="sample")
    assert [(row["sample"], row["label"]) for row in rows] == [("1", "one"), ("2", "two")]


def test_integer_and_float_keys_join_as_double(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\n1,10\n2,20\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,label\n1.0,one\n2.5,two and a half\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("numeric")]))

    harness.scan()

    assert harness.joined_types("numeric")["sample"] == "DOUBLE"
    rows = harness.joined_rows("numeric")
    assert [(row["sample"], row["label"]) for row in rows] == [(1.0, "one")]


def test_left_side_wins_on_clashing_names(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,value,size\na,left-a,1\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,value,weight\na,right-a,9\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("clash")]))

    harness.scan()

    types = harness.joined_types("clash")
    assert list(types) == ["sample", "value", "size", *RESERVED_COLUMNS, "weight"]
    row = harness.joined_rows("clash")[0]
    assert row["value"] == "left-a"
    left_file = harness.files("left")[0].id
    assert row["depictio_file_id"] == left_file


def test_granularity_rolls_up_the_finer_side(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,habitat\ns1,river\ns2,soil\n")
    write_file(
        tmp_path / "data" / "run_1" / "right.csv",
        "sample,depth,reads,taxon\ns1,10,100,alpha\ns1,20,300,beta\ns1,30,200,gamma\ns2,5,50,delta\n",
    )
    granularity = {
        "aggregate_to": "sample",
        "numeric_default": "mean",
        "categorical_default": "last",
        "column_overrides": [{"column": "reads", "function": "max"}],
    }
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("rolled", granularity=granularity)]))

    harness.scan()

    rows = harness.joined_rows("rolled", order_by="sample")
    assert [(row["sample"], row["habitat"], row["depth"], row["reads"], row["taxon"]) for row in rows] == [
        ("s1", "river", 20.0, 300, "gamma"),
        ("s2", "soil", 5.0, 50, "delta"),
    ]


def test_granularity_rejects_mean_of_text(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,habitat\ns1,river\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,taxon\ns1,alpha\ns1,beta\n")
    granularity = {"aggregate_to": "sample", "categorical_default": "mean"}
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("bad_rollup", granularity=granularity)]))

    result = harness.scan()

    assert [join.outcome for join in result.joins] == ["error"]
    status = harness.catalog.joins.status(harness.join_id("bad_rollup"))
    assert status is not None
    assert status.message is not None
    assert "'taxon'" in status.message
    assert "needs numbers" in status.message


def test_fan_out_is_warned_and_recorded(
    tmp_path: Path, harnesses: list[Harness], caplog: pytest.LogCaptureFixture
) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\ns1,1\ns1,2\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\ns1,10\ns1,20\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("fan_out")]))

    with caplog.at_level(logging.WARNING, logger="ingestor.joins"):
        harness.scan()

    assert len(harness.joined_rows("fan_out")) == 4
    status = harness.catalog.joins.status(harness.join_id("fan_out"))
    assert status is not None
    assert status.warning is not None
    assert "4 rows, more than its larger input (2 rows)" in status.warning
    assert any("more than its larger input" in record.getMessage() for record in caplog.records)


def test_runaway_fan_out_is_an_error(tmp_path: Path, harnesses: list[Harness]) -> None:
    # 1,100 rows of one key on each side would give 1,210,000 rows, past the 1,000,000 cap.
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\n" + "s1,1\n" * 1100)
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\n" + "s1,10\n" * 1100)
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("runaway")]))

    harness.scan()

    status = harness.catalog.joins.status(harness.join_id("runaway"))
    assert status is not None
    assert status.outcome == "error"
    assert "more than 1,000,000 rows" in (status.message or "")
    assert not harness.has_join_table("runaway")


def test_full_join_has_no_fan_out_warning(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\ns1,1\ns2,2\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\ns3,10\ns4,20\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("disjoint", how="full")]))

    harness.scan()

    assert len(harness.joined_rows("disjoint")) == 4
    status = harness.catalog.joins.status(harness.join_id("disjoint"))
    assert status is not None
    assert status.warning is None


def test_missing_join_column_is_an_error(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\ns1,1\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\ns1,10\n")
    join = _join("missing", on_columns=["sample", "plate"])
    harness = _open(harnesses, tmp_path, _project(tmp_path, [join]))

    result = harness.scan()

    assert [join.outcome for join in result.joins] == ["error"]
    assert not harness.has_join_table("missing")
    status = harness.catalog.joins.status(harness.join_id("missing"))
    assert status is not None
    assert status.message is not None
    assert "join columns ['plate'] not found in the left data collection 'left'" in status.message
    assert "not found in the right data collection 'right'" in status.message


def test_missing_column_keeps_previous_table(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\ns1,1\n")
    right = write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\ns1,10\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("kept")]))
    harness.scan()

    write_file(right, "specimen,weight\ns1,11\n")
    result = harness.scan()

    assert [join.outcome for join in result.joins] == ["error"]
    assert [(row["sample"], row["weight"]) for row in harness.joined_rows("kept")] == [("s1", 10)]


def test_changed_side_file_updates_join(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\ns1,1\ns2,2\n")
    right = write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\ns1,10\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("follows")]))
    harness.scan()
    first = harness.catalog.tables.get(harness.join_id("follows"))

    write_file(right, "sample,weight\ns1,15\ns2,25\n")
    harness.ingestor.rescan_workflow(harness.workflow_id)

    rows = harness.joined_rows("follows", order_by="sample")
    assert [(row["sample"], row["weight"]) for row in rows] == [("s1", 15), ("s2", 25)]
    table = harness.catalog.tables.get(harness.join_id("follows"))
    assert first is not None and table is not None
    assert table.aggregation_version == first.aggregation_version + 1


def test_join_rebuild_publishes_and_stales_cursor(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\n" + "".join(f"s{n},{n}\n" for n in range(9)))
    right = write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\ns1,10\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("paged", how="left")]))
    harness.scan()
    join_id = harness.join_id("paged")
    page = harness.catalog.tables.rows(join_id, RowsQuery(limit=3))
    assert page is not None and page.next_after is not None
    before = harness.catalog.events.last_event_id

    write_file(right, "sample,weight\ns1,15\n")
    harness.ingestor.rescan_workflow(harness.workflow_id)

    loop = asyncio.new_event_loop()
    try:
        subscription, missed, _ = harness.catalog.events.subscribe(loop, before)
        subscription.cancel()
    finally:
        loop.close()
    updates = [msgspec.json.decode(event.data) for event in missed if event.type == "table.updated"]
    assert {"data_collection_id": join_id, "outcome": "built"}.items() <= updates[-1].items()
    with pytest.raises(StaleCursorError):
        harness.catalog.tables.rows(join_id, RowsQuery(limit=3, after=page.next_after))


def test_unchanged_sides_keep_join_version(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\ns1,1\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\ns1,10\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("steady")]))
    harness.scan()

    result = harness.scan()

    assert [join.outcome for join in result.joins] == ["unchanged"]
    table = harness.catalog.tables.get(harness.join_id("steady"))
    assert table is not None
    assert table.aggregation_version == 1


def test_removed_side_drops_join(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\ns1,1\n")
    right = write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\ns1,10\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("dropped")]))
    harness.scan()
    assert harness.has_join_table("dropped")

    right.unlink()
    result = harness.scan()

    assert [join.outcome for join in result.joins] == ["empty"]
    assert not harness.has_join_table("dropped")
    status = harness.catalog.joins.status(harness.join_id("dropped"))
    assert status is not None
    assert status.outcome == "dropped"
    assert status.message is not None
    assert "the right data collection 'right'" in status.message
    assert "has no table yet" in status.message


def test_side_without_table_is_skipped(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\ns1,1\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("waiting")]))

    result = harness.scan()

    assert [join.outcome for join in result.joins] == ["empty"]
    status = harness.catalog.joins.status(harness.join_id("waiting"))
    assert status is not None
    assert status.outcome == "skipped"
    assert status.message is not None
    assert "'right'" in status.message


def test_join_without_persist_is_not_built(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\ns1,1\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\ns1,10\n")
    harness = _open(harnesses, tmp_path, _project(tmp_path, [_join("preview", persist=False)]))

    result = harness.scan()

    assert result.joins == []
    assert harness.catalog.projects.collection(harness.join_id("preview")) is None
    assert not harness.has_join_table("preview")


def test_changed_definition_rebuilds_at_start(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\na,1\nb,2\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\nb,20\n")
    project = _project(tmp_path, [_join("redefined")])
    harness = _open(harnesses, tmp_path, project)
    harness.scan()
    assert len(harness.joined_rows("redefined")) == 1
    harness.close()
    harnesses.remove(harness)

    _project(tmp_path, [_join("redefined", how="left")])
    restarted = _open(harnesses, tmp_path, project, scan_on_start=False, watch_mode="off", reconcile_seconds=0)
    restarted.ingestor.start()

    assert len(restarted.joined_rows("redefined")) == 2


def test_removed_join_drops_its_collection(tmp_path: Path, harnesses: list[Harness]) -> None:
    write_file(tmp_path / "data" / "run_1" / "left.csv", "sample,size\ns1,1\n")
    write_file(tmp_path / "data" / "run_1" / "right.csv", "sample,weight\ns1,10\n")
    project = _project(tmp_path, [_join("temporary")])
    harness = _open(harnesses, tmp_path, project)
    harness.scan()
    join_id = harness.join_id("temporary")
    harness.close()
    harnesses.remove(harness)

    _project(tmp_path, [])
    restarted = _open(harnesses, tmp_path, project)

    assert restarted.catalog.projects.collection(join_id) is None
    assert restarted.catalog.tables.get(join_id) is None
    assert restarted.catalog.joins.status(join_id) is None
