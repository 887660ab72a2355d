"""Check raw YAML/TOML data against msgspec Struct types and collect every problem.

msgspec stops at the first error and reports it in its own words. Users fixing a config
file want every problem at once, each naming the key path, the bad value and the valid
choices, so this walker reads the Struct definitions and checks the data itself.
"""

from __future__ import annotations

import difflib
from typing import Any

import msgspec
from msgspec import inspect as mi

_TYPE_WORDS: dict[type[mi.Type], str] = {
    mi.StrType: "a string",
    mi.IntType: "an integer",
    mi.FloatType: "a number",
    mi.BoolType: "true or false",
    mi.ListType: "a list",
    mi.DictType: "a mapping",
    mi.StructType: "a mapping",
    mi.NoneType: "null",
}


def describe_value(value: Any) -> str:
    """Return `value` as the user wrote it, with its YAML type, for error messages."""
    kind = {
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
        list: "list",
        dict: "mapping",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


def join_path(parent: str, key: str | int) -> str:
    """Append a mapping key or list index to a dotted key path."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def check_against(data: Any, struct_type: type, key_path: str = "") -> list[tuple[str, str]]:
    """Return (key_path, message) pairs for every place where `data` does not fit the type."""
    problems: list[tuple[str, str]] = []
    _check(data, mi.type_info(struct_type), key_path, problems)
    return problems


def _check(value: Any, info: mi.Type, path: str, problems: list[tuple[str, str]]) -> None:
    if isinstance(info, mi.AnyType):
        return

    if isinstance(info, mi.UnionType):
        _check_union(value, info, path, problems)
        return

    if isinstance(info, mi.LiteralType):
        if value not in info.values:
            choices = ", ".join(str(choice) for choice in info.values)
            problems.append((path, f"invalid value {describe_value(value)}; valid choices: {choices}"))
        return

    if not _has_kind(value, info):
        expected = _TYPE_WORDS.get(type(info), "a value")
        problems.append((path, f"expected {expected}, got {describe_value(value)}{_quote_hint(info, value)}"))
        return

    if isinstance(info, mi.StructType):
        _check_struct(value, info, path, problems)
    elif isinstance(info, mi.ListType):
        for index, item in enumerate(value):
            _check(item, info.item_type, join_path(path, index), problems)
    elif isinstance(info, mi.DictType):
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append((path, f"keys must be text, got {describe_value(key)}"))
                continue
            _check(item, info.value_type, join_path(path, key), problems)


def _has_kind(value: Any, info: mi.Type) -> bool:
    if isinstance(info, mi.StrType):
        return isinstance(value, str)
    if isinstance(info, mi.BoolType):
        return isinstance(value, bool)
    if isinstance(info, mi.IntType):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(info, mi.FloatType):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(info, mi.ListType):
        return isinstance(value, list)
    if isinstance(info, mi.DictType | mi.StructType):
        return isinstance(value, dict)
    if isinstance(info, mi.NoneType):
        return value is None
    return True


def _check_union(value: Any, info: mi.UnionType, path: str, problems: list[tuple[str, str]]) -> None:
    # Optional[X] is the only union the config Structs use besides plain scalar unions.
    if value is None and any(isinstance(t, mi.NoneType) for t in info.types):
        return

    members = [t for t in info.types if not isinstance(t, mi.NoneType)]
    for member in members:
        if _has_kind(value, member):
            _check(value, member, path, problems)
            return

    expected = " or ".join(_TYPE_WORDS.get(type(t), "a value") for t in members)
    hint = next((_quote_hint(member, value) for member in members if _quote_hint(member, value)), "")
    problems.append((path, f"expected {expected}, got {describe_value(value)}{hint}"))


def _quote_hint(info: mi.Type, value: Any) -> str:
    # YAML reads `version: 3.10` as the number 3.1, so text fields need quotes.
    if isinstance(info, mi.StrType) and isinstance(value, int | float) and not isinstance(value, bool):
        return '; quote it so it stays text, e.g. version: "3.10"'
    return ""


def _check_struct(value: dict[str, Any], info: mi.StructType, path: str, problems: list[tuple[str, str]]) -> None:
    fields = {field.encode_name: field for field in info.fields}

    for key in value:
        if key in fields:
            continue
        valid = ", ".join(sorted(fields))
        close = difflib.get_close_matches(str(key), list(fields), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        message = f"unknown key {key!r}{hint} Valid keys here: {valid}"
        problems.append((join_path(path, str(key)), message))

    for name, field in fields.items():
        if name not in value:
            if field.required:
                problems.append((join_path(path, name), f"required key {name!r} is missing; add it"))
            continue
        _check(value[name], field.type, join_path(path, name), problems)


def convert(data: Any, struct_type: type[Any]) -> Any:
    """Convert checked data into `struct_type`; the data must already pass `check_against`."""
    return msgspec.convert(data, struct_type, str_keys=True)
