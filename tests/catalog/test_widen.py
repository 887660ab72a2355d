"""The widening rule that picks one column type for the files of a collection."""

from __future__ import annotations

import pytest

from catalog.widen import NULL, TEXT, common_type, unify


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("INTEGER", "BIGINT", "BIGINT"),
        ("SMALLINT", "INTEGER", "BIGINT"),
        ("UINTEGER", "INTEGER", "BIGINT"),
        ("BIGINT", "HUGEINT", "HUGEINT"),
        ("BIGINT", "UBIGINT", "HUGEINT"),
        ("INTEGER", "DOUBLE", "DOUBLE"),
        ("BIGINT", "FLOAT", "DOUBLE"),
        ("DECIMAL(10,2)", "BIGINT", "DOUBLE"),
        ("DATE", "TIMESTAMP", "TIMESTAMP"),
        ("TIMESTAMP_NS", "DATE", "TIMESTAMP"),
        ("TIMESTAMP WITH TIME ZONE", "DATE", "TIMESTAMP WITH TIME ZONE"),
        ("BOOLEAN", "INTEGER", TEXT),
        ("BIGINT", "VARCHAR", TEXT),
        ("DATE", "DOUBLE", TEXT),
    ],
)
def test_common_type_widens(first: str, second: str, expected: str) -> None:
    assert common_type(first, second) == expected


@pytest.mark.parametrize(("first", "second"), [("INTEGER", "BIGINT"), ("DATE", "TIMESTAMP"), ("BOOLEAN", "BIGINT")])
def test_common_type_is_symmetric(first: str, second: str) -> None:
    assert common_type(first, second) == common_type(second, first)


@pytest.mark.parametrize("kind", ["BIGINT", "DOUBLE", "DATE", "BOOLEAN", "VARCHAR"])
def test_common_type_of_null_is_other(kind: str) -> None:
    assert common_type(NULL, kind) == kind
    assert common_type(kind, NULL) == kind


@pytest.mark.parametrize("kind", ["INTEGER", "DOUBLE", "TIMESTAMP", "VARCHAR", "DECIMAL(18,3)"])
def test_common_type_of_equal_types(kind: str) -> None:
    assert common_type(kind, kind) == kind


def test_unify_orders_columns_by_first_appearance() -> None:
    schemas = [
        ("file-1", [("sample", "VARCHAR"), ("reads", "INTEGER")]),
        ("file-2", [("gc", "DOUBLE"), ("sample", "VARCHAR")]),
    ]

    unified = unify(schemas)

    assert unified.columns == [("sample", "VARCHAR"), ("reads", "INTEGER"), ("gc", "DOUBLE")]


def test_unify_widens_across_files() -> None:
    schemas = [
        ("file-1", [("reads", "INTEGER")]),
        ("file-2", [("reads", "BIGINT")]),
        ("file-3", [("reads", "DOUBLE")]),
    ]

    unified = unify(schemas)

    assert unified.columns == [("reads", "DOUBLE")]


def test_unify_lists_drift_per_file() -> None:
    schemas = [
        ("file-1", [("reads", "INTEGER"), ("day", "DATE")]),
        ("file-2", [("reads", "BIGINT"), ("day", "TIMESTAMP")]),
        ("file-3", [("reads", "DOUBLE"), ("day", "TIMESTAMP")]),
    ]

    unified = unify(schemas)

    assert unified.drift == [
        ("file-1", "reads", "INTEGER", "DOUBLE"),
        ("file-1", "day", "DATE", "TIMESTAMP"),
        ("file-2", "reads", "BIGINT", "DOUBLE"),
    ]


def test_unify_without_conflict_has_no_drift() -> None:
    schemas = [("file-1", [("reads", "BIGINT")]), ("file-2", [("reads", "BIGINT"), ("gc", "DOUBLE")])]

    unified = unify(schemas)

    assert unified.drift == []


def test_unify_null_column_takes_other_type() -> None:
    schemas = [("file-1", [("score", NULL)]), ("file-2", [("score", "DOUBLE")])]

    unified = unify(schemas)

    assert unified.columns == [("score", "DOUBLE")]
    assert unified.drift == []


def test_unify_all_null_column_is_text() -> None:
    schemas = [("file-1", [("note", NULL)]), ("file-2", [("note", NULL)])]

    unified = unify(schemas)

    assert unified.columns == [("note", TEXT)]


def test_unify_text_and_number_is_text() -> None:
    schemas = [("file-1", [("value", "BIGINT")]), ("file-2", [("value", "VARCHAR")])]

    unified = unify(schemas)

    assert unified.columns == [("value", TEXT)]
    assert unified.drift == [("file-1", "value", "BIGINT", TEXT)]
