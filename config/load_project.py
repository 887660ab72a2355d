"""Load Depictio project YAML files into checked, resolved Project Structs."""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from typing import Any

import msgspec
import yaml

from config import _walk
from config.errors import ConfigError, ConfigProblem
from config.ids import derive_id, is_object_id
from config.paths import UnsetVariableError, expand_variables, resolve_path
from config.project import PROPERTIES_BY_TYPE, Project, ScanRecursive, ScanSingle
from config.reader_options import parse_reader_options

logger = logging.getLogger(__name__)

# Data collection tags name tables and appear in `workflow.tag` join references,
# so a dot or a space would make those references ambiguous.
TAG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
JOIN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
WILDCARD_REFERENCE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
YAML_SUFFIXES = (".yaml", ".yml")

_Problems = list[tuple[str, str]]
# A project file is a few hundred values; YAML aliases can make a small file expand to
# billions, so expansion stops being checked past this many.
MAX_VALUES = 200_000
# The maximum number of workflows and data collections in a project sent over the API,
# because each workflow gets a reconcile job and a watch of its own.
MAX_SENT_WORKFLOWS = 100
MAX_SENT_COLLECTIONS = 500


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that rejects a key written twice in one mapping instead of keeping the last."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark
                )
            if isinstance(key, str):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _count_values(data: Any, budget: int) -> int:
    """Count the values in `data`, following aliases, stopping once `budget` is exceeded."""
    count = 0
    stack = [data]
    while stack and count <= budget:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


class _MissingPath(tuple[str, str]):
    """A problem reporting that a location or single file does not exist (yet, or any more)."""


def load_project(path: str, environ: dict[str, str] | None = None, allow_missing_paths: bool = False) -> Project:
    """Read, check and resolve one project file; raise ConfigError listing every problem.

    With `allow_missing_paths`, a location or single file that does not exist is logged as a
    warning instead: the service then starts, and its scans report the path and keep the
    runs of a vanished location for the configured grace period.
    """
    shown_path = os.path.abspath(path)
    raw = _read_yaml(shown_path)
    problems: _Problems = []

    _normalise(raw)
    problems.extend(_walk.check_against(raw, Project))
    _check_project(raw, os.path.dirname(shown_path), environ, problems)

    if allow_missing_paths:
        for key, message in (problem for problem in problems if isinstance(problem, _MissingPath)):
            logger.warning("%s, %s: %s; its scans will report it until it exists", shown_path, key, message)
        problems = [problem for problem in problems if not isinstance(problem, _MissingPath)]
    if problems:
        raise ConfigError([ConfigProblem(shown_path, key, message) for key, message in problems])

    project: Project = _walk.convert(raw, Project)
    return msgspec.structs.replace(project, yaml_config_path=shown_path)


def load_project_document(raw: Any) -> Project:
    """Check a project sent over the API as a project file is checked; raise ConfigError.

    Paths must be absolute, since there is no file to be relative to, and environment
    variables are not expanded, since they are the service's own. A location or single file
    that the service cannot see is accepted: the project is stored, and its files are read
    once they are visible.
    """
    where = "request body"
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem(where, "", f"expected a project object, got {_walk.describe_value(raw)}")])
    if _count_values(raw, MAX_VALUES) > MAX_VALUES:
        raise ConfigError([ConfigProblem(where, "", f"the project has more than {MAX_VALUES:,} values; simplify it")])
    problems: _Problems = []
    _normalise(raw)
    problems.extend(_walk.check_against(raw, Project))
    problems.extend(_relative_paths(raw))
    problems.extend(_hidden_characters(raw))
    workflows = _dicts(raw.get("workflows"))
    collections = len(_all_collections(raw))
    if len(workflows) > MAX_SENT_WORKFLOWS or collections > MAX_SENT_COLLECTIONS:
        problems.append(
            (
                "workflows",
                f"the project has {len(workflows)} workflows and {collections} data collections; a project sent "
                f"over the API may have at most {MAX_SENT_WORKFLOWS} and {MAX_SENT_COLLECTIONS}",
            )
        )
    if not problems:
        _check_project(raw, os.sep, {}, problems)
    problems = [problem for problem in problems if not isinstance(problem, _MissingPath)]
    if problems:
        raise ConfigError([ConfigProblem(where, key, message) for key, message in problems])
    project: Project = _walk.convert(raw, Project)
    return project


def _hidden_characters(raw: dict[str, Any]) -> _Problems:
    """Return a problem for each name, tag or location of an API project with a control or invisible character.

    Such characters forge log lines, break file system calls (NUL) or make two names look alike.
    """
    named: list[tuple[str, Any]] = [("name", raw.get("name"))]
    for index, workflow in _indexed(raw.get("workflows")):
        named.append((f"workflows[{index}].name", workflow.get("name")))
        location = workflow.get("data_location")
        folders = location.get("locations") if isinstance(location, dict) else None
        for position, folder in enumerate(folders if isinstance(folders, list) else []):
            named.append((f"workflows[{index}].data_location.locations[{position}]", folder))
        for position, collection in _indexed(workflow.get("data_collections")):
            named.append(
                (
                    f"workflows[{index}].data_collections[{position}].data_collection_tag",
                    collection.get("data_collection_tag"),
                )
            )
    return [
        (key, f"{value!r} contains a control or invisible character; remove it")
        for key, value in named
        if isinstance(value, str) and has_hidden_characters(value)
    ]


def has_hidden_characters(text: str) -> bool:
    """Tell whether `text` contains a control, format (zero-width), private-use or unassigned character."""
    return any(unicodedata.category(character).startswith("C") for character in text)


def _relative_paths(raw: dict[str, Any]) -> _Problems:
    """Return a problem for each location or single file of an API project that is not an absolute path."""
    problems: _Problems = []
    for index, workflow in _indexed(raw.get("workflows")):
        location = workflow.get("data_location")
        folders = location.get("locations") if isinstance(location, dict) else None
        for position, folder in enumerate(folders if isinstance(folders, list) else []):
            if isinstance(folder, str) and not os.path.isabs(folder):
                problems.append(
                    (
                        f"workflows[{index}].data_location.locations[{position}]",
                        f"{folder!r} is not an absolute path; a project sent over the API must give "
                        "each location as an absolute path on the service's machine",
                    )
                )
    return problems


def compile_file_pattern(pattern: str, wildcards: dict[str, str]) -> re.Pattern[str]:
    """Compile a scan pattern, turning each `{name}` wildcard into a named capture group.

    A wildcard used twice must match the same text both times (a backreference).
    """
    seen: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in wildcards:
            return match.group(0)
        if name in seen:
            return f"(?P={name})"
        seen.add(name)
        return f"(?P<{name}>{wildcards[name]})"

    return re.compile(WILDCARD_REFERENCE.sub(substitute, pattern))


def _read_yaml(path: str) -> dict[str, Any]:
    def fail(message: str) -> ConfigError:
        return ConfigError([ConfigProblem(path, "", message)])

    if not path.endswith(YAML_SUFFIXES):
        raise fail("a project file must end in .yaml or .yml; rename it or list the right file")
    if not os.path.exists(path):
        raise fail("the project file does not exist; check the path in the `projects` setting")
    if not os.path.isfile(path):
        raise fail("the project path is not a regular file; list a .yaml file, not a folder")

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise fail(f"invalid YAML at {where}: {error.problem}; fix the syntax there") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise fail(f"cannot read the file: {error}") from None
    except RecursionError:
        raise fail("the file is nested too deeply to read; a project file needs about ten levels") from None

    if _count_values(data, MAX_VALUES) > MAX_VALUES:
        raise fail(
            f"the file expands to more than {MAX_VALUES:,} values, through YAML aliases or sheer size; simplify it"
        )
    if not isinstance(data, dict):
        raise fail(f"expected a mapping with a `name` and `workflows`, got {_walk.describe_value(data)}")

    if "template" in data:
        # Depictio template files carry a `template:` block that its CLI strips before
        # validation; the variables it declares come from the environment here.
        logger.info("ignoring the template block of %s; template variables come from the environment", path)
        del data["template"]
    return data


def _normalise(raw: dict[str, Any]) -> None:
    """Apply Depictio's lenient spellings: `_id` for `id`, case-insensitive enum values."""
    _rename_underscore_id(raw)
    for collection in _all_collections(raw):
        config = collection.get("config")
        if not isinstance(config, dict):
            continue
        for key in ("type", "source"):
            if isinstance(config.get(key), str):
                config[key] = config[key].lower().removeprefix("datacollectionsource.")
        scan = config.get("scan")
        if isinstance(scan, dict) and isinstance(scan.get("mode"), str):
            scan["mode"] = scan["mode"].lower()
        parameters = scan.get("scan_parameters") if isinstance(scan, dict) else None
        regex_config = parameters.get("regex_config") if isinstance(parameters, dict) else None
        if isinstance(regex_config, dict) and "wildcards" in regex_config and regex_config["wildcards"] is None:
            # Depictio 1.19 clients send `wildcards: null` for a pattern without wildcards.
            del regex_config["wildcards"]
        properties = config.get("dc_specific_properties")
        if isinstance(properties, dict) and isinstance(properties.get("format"), str):
            properties["format"] = properties["format"].lower()


def _rename_underscore_id(value: Any) -> None:
    if isinstance(value, dict):
        if "_id" in value and "id" not in value:
            value["id"] = value.pop("_id")
        for item in value.values():
            _rename_underscore_id(item)
    elif isinstance(value, list):
        for item in value:
            _rename_underscore_id(item)


def _all_collections(raw: dict[str, Any]) -> list[dict[str, Any]]:
    found = [dc for dc in _dicts(raw.get("data_collections"))]
    for workflow in _dicts(raw.get("workflows")):
        found.extend(_dicts(workflow.get("data_collections")))
    return found


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _indexed(value: Any) -> list[tuple[int, dict[str, Any]]]:
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, dict)]


def _check_project(raw: dict[str, Any], base_dir: str, environ: dict[str, str] | None, problems: _Problems) -> None:
    name = raw.get("name")
    if isinstance(name, str) and not name.strip():
        problems.append(("name", "the project name is empty; give the project a name"))

    url = raw.get("data_management_platform_project_url")
    if isinstance(url, str) and not url.startswith(("http://", "https://")):
        problems.append(
            ("data_management_platform_project_url", f"invalid URL {url!r}; it must start with http:// or https://")
        )

    project_id = _check_id(raw, "", problems) or derive_id("project", str(name))
    raw["id"] = project_id

    workflow_names: dict[str, int] = {}
    for index, workflow in _indexed(raw.get("workflows")):
        path = f"workflows[{index}]"
        _check_workflow(workflow, path, project_id, base_dir, environ, problems)
        tag = workflow.get("workflow_tag")
        if isinstance(tag, str):
            if tag in workflow_names:
                first = workflow_names[tag]
                problems.append(
                    (
                        f"{path}.name",
                        f"workflow tag {tag!r} is already used by workflows[{first}]; workflow names must be unique in a project",
                    )
                )
            workflow_names.setdefault(tag, index)

    for index, collection in _indexed(raw.get("data_collections")):
        _check_collection(collection, f"data_collections[{index}]", project_id, base_dir, environ, problems)

    _check_joins(raw, project_id, problems)
    _check_unique_ids(raw, problems)


def _check_id(item: dict[str, Any], path: str, problems: _Problems) -> str | None:
    value = item.get("id")
    if not isinstance(value, str):
        return None  # Absent, or a wrong type that the structural check reports.
    if not is_object_id(value):
        key = _walk.join_path(path, "id")
        problems.append(
            (
                key,
                f"invalid id {value!r}; ids are 24 hexadecimal characters such as '646b0f3c1e4a2d7f8e5b8c9d'; remove the line to let depictiod derive a stable id",
            )
        )
        return None
    lowered: str = value.lower()
    item["id"] = lowered
    return lowered


def _check_workflow(
    workflow: dict[str, Any],
    path: str,
    project_id: str,
    base_dir: str,
    environ: dict[str, str] | None,
    problems: _Problems,
) -> None:
    name = workflow.get("name")
    if isinstance(name, str) and not name.strip():
        problems.append((f"{path}.name", "the workflow name is empty; give the workflow a name"))

    # A name of the wrong type is reported elsewhere; the key path keeps derived ids distinct.
    workflow_id = _check_id(workflow, path, problems) or derive_id(
        "workflow", project_id, name if isinstance(name, str) else path
    )
    workflow["id"] = workflow_id
    if not isinstance(workflow.get("workflow_tag"), str):
        # Depictio stores the plain name as the tag for workflows loaded from YAML.
        workflow["workflow_tag"] = name

    config = workflow.get("config")
    if config is None:
        workflow["config"] = config = {}
    if isinstance(config, dict):
        config["id"] = _check_id(config, f"{path}.config", problems) or derive_id("workflow-config", workflow_id)

    catalog = workflow.get("catalog")
    if (
        isinstance(catalog, dict)
        and isinstance(catalog.get("url"), str)
        and not re.match(r"^(https?|git)://", catalog["url"])
    ):
        problems.append(
            (f"{path}.catalog.url", f"invalid URL {catalog['url']!r}; it must start with http://, https:// or git://")
        )

    location = workflow.get("data_location")
    if isinstance(location, dict):
        location["id"] = _check_id(location, f"{path}.data_location", problems) or derive_id(
            "data-location", workflow_id
        )
        _check_data_location(location, f"{path}.data_location", base_dir, environ, problems)

    tags: dict[str, int] = {}
    for index, collection in _indexed(workflow.get("data_collections")):
        dc_path = f"{path}.data_collections[{index}]"
        _check_collection(collection, dc_path, workflow_id, base_dir, environ, problems)
        tag = collection.get("data_collection_tag")
        if not isinstance(tag, str):
            continue
        if tag in tags:
            problems.append(
                (
                    f"{dc_path}.data_collection_tag",
                    f"tag {tag!r} is already used by data_collections[{tags[tag]}] of this workflow; tags must be unique in a workflow",
                )
            )
            continue
        tags[tag] = index


def _check_data_location(
    location: dict[str, Any], path: str, base_dir: str, environ: dict[str, str] | None, problems: _Problems
) -> None:
    structure = location.get("structure")
    runs_regex = location.get("runs_regex")
    if structure == "sequencing-runs" and runs_regex is None:
        problems.append(
            (
                f"{path}.runs_regex",
                "runs_regex is required when structure is 'sequencing-runs'; add e.g. runs_regex: \"run_.*\"",
            )
        )
    if isinstance(runs_regex, str):
        _check_regex(runs_regex, f"{path}.runs_regex", problems)

    locations = location.get("locations")
    if not isinstance(locations, list):
        return
    if not locations:
        problems.append((f"{path}.locations", "no locations are listed; add the folder the workflow writes to"))

    for index, raw_location in enumerate(locations):
        key = f"{path}.locations[{index}]"
        if not isinstance(raw_location, str):
            continue
        resolved = _resolve(raw_location, key, base_dir, environ, problems)
        if resolved is None:
            continue
        locations[index] = resolved
        _check_folder(resolved, key, problems)


def _resolve(raw_path: str, key: str, base_dir: str, environ: dict[str, str] | None, problems: _Problems) -> str | None:
    try:
        return resolve_path(expand_variables(raw_path, environ), base_dir)
    except UnsetVariableError as error:
        problems.append((key, str(error)))
        return None


def _check_folder(folder: str, key: str, problems: _Problems) -> None:
    if not os.path.exists(folder):
        problems.append(
            _MissingPath(
                (
                    key,
                    f"the folder {folder!r} does not exist; create it or fix the path (relative paths start at the YAML file's folder)",
                )
            )
        )
    elif not os.path.isdir(folder):
        problems.append((key, f"{folder!r} is not a folder; give the folder that contains the runs"))
    elif not os.access(folder, os.R_OK | os.X_OK):
        problems.append((key, f"the folder {folder!r} is not readable by this user; grant read and execute permission"))


def _check_regex(pattern: str, key: str, problems: _Problems) -> bool:
    try:
        re.compile(pattern)
    except re.error as error:
        problems.append(
            (key, f"invalid regular expression {pattern!r}: {error}; escape special characters with a backslash")
        )
        return False
    return True


def _check_collection(
    collection: dict[str, Any],
    path: str,
    parent_id: str,
    base_dir: str,
    environ: dict[str, str] | None,
    problems: _Problems,
) -> None:
    tag = collection.get("data_collection_tag")
    if isinstance(tag, str) and not TAG_PATTERN.match(tag):
        problems.append(
            (
                f"{path}.data_collection_tag",
                f"invalid tag {tag!r}; use letters, digits, '_' and '-', starting with a letter or digit",
            )
        )

    collection_id = _check_id(collection, path, problems) or derive_id(
        "data-collection", parent_id, tag if isinstance(tag, str) else path
    )
    collection["id"] = collection_id

    config = collection.get("config")
    if not isinstance(config, dict):
        return
    config_path = f"{path}.config"
    config["id"] = _check_id(config, config_path, problems) or derive_id("data-collection-config", collection_id)

    kind = config.get("type")
    source = config.get("source", "native")
    scan = config.get("scan")
    if scan is None and source == "native" and kind != "multiqc":
        problems.append(
            (
                f"{config_path}.scan",
                "scan is required for native data collections; add a scan block (mode: single or recursive), or set source: joined or transformed",
            )
        )
    if isinstance(scan, dict):
        _check_scan(scan, f"{config_path}.scan", base_dir, environ, problems)

    properties = config.get("dc_specific_properties")
    if isinstance(properties, dict) and isinstance(kind, str) and kind in PROPERTIES_BY_TYPE:
        _check_properties(properties, kind, f"{config_path}.dc_specific_properties", problems)

    transform = config.get("transform")
    if (
        isinstance(transform, dict)
        and isinstance(transform.get("recipe"), str)
        and not transform["recipe"].endswith(".py")
    ):
        problems.append(
            (f"{config_path}.transform.recipe", f"recipe {transform['recipe']!r} must be a Python file ending in .py")
        )


def _check_scan(
    scan: dict[str, Any], path: str, base_dir: str, environ: dict[str, str] | None, problems: _Problems
) -> None:
    parameters = scan.get("scan_parameters")
    mode = scan.get("mode")
    if not isinstance(parameters, dict):
        return
    parameters_path = f"{path}.scan_parameters"

    if mode == "single":
        found = _walk.check_against(parameters, ScanSingle, parameters_path)
        problems.extend(found)
        filename = parameters.get("filename")
        if found or not isinstance(filename, str):
            return
        if not filename.strip():
            problems.append((f"{parameters_path}.filename", "the filename is empty; give the file to register"))
            return
        resolved = _resolve(filename, f"{parameters_path}.filename", base_dir, environ, problems)
        if resolved is None:
            return
        parameters["filename"] = resolved
        if not os.path.exists(resolved):
            problems.append(
                _MissingPath(
                    (
                        f"{parameters_path}.filename",
                        f"the file {resolved!r} does not exist; fix the path (relative paths start at the YAML file's folder)",
                    )
                )
            )
        elif not os.path.isfile(resolved):
            problems.append((f"{parameters_path}.filename", f"{resolved!r} is not a file; give the path of one file"))
        return

    if mode == "recursive":
        found = _walk.check_against(parameters, ScanRecursive, parameters_path)
        problems.extend(found)
        if not found:
            _check_regex_config(parameters["regex_config"], f"{parameters_path}.regex_config", problems)
            max_depth = parameters.get("max_depth")
            if isinstance(max_depth, int) and max_depth < 0:
                problems.append((f"{parameters_path}.max_depth", f"max_depth must be 0 or more, got {max_depth}"))


def _check_regex_config(regex_config: dict[str, Any], path: str, problems: _Problems) -> None:
    wildcards: dict[str, str] = {}
    for index, wildcard in enumerate(regex_config.get("wildcards") or []):
        key = f"{path}.wildcards[{index}]"
        name = wildcard["name"]
        if name in wildcards:
            problems.append((f"{key}.name", f"duplicate wildcard name {name!r}; each wildcard needs its own name"))
            continue
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            problems.append((f"{key}.name", f"invalid wildcard name {name!r}; use letters, digits and '_'"))
            continue
        if _check_regex(wildcard["wildcard_regex"], f"{key}.wildcard_regex", problems):
            wildcards[name] = wildcard["wildcard_regex"]

    pattern = regex_config["pattern"]
    if not pattern:
        problems.append((f"{path}.pattern", "the pattern is empty; give a regular expression for the file names"))
        return
    try:
        compile_file_pattern(pattern, wildcards)
    except re.error as error:
        problems.append(
            (
                f"{path}.pattern",
                f"invalid regular expression {pattern!r}: {error}; escape special characters with a backslash",
            )
        )


def _check_properties(properties: dict[str, Any], kind: str, path: str, problems: _Problems) -> None:
    found = _walk.check_against(properties, PROPERTIES_BY_TYPE[kind], path)
    problems.extend(found)
    if found:
        return

    kwargs = properties.get("polars_kwargs")
    if isinstance(kwargs, dict):
        _, option_problems = parse_reader_options(kwargs)
        problems.extend((f"{path}.polars_kwargs.{key}", message) for key, message in option_problems)

    lat, lon = properties.get("lat_column"), properties.get("lon_column")
    if (lat is None) != (lon is None):
        problems.append((path, "lat_column and lon_column go together; give both or neither"))
    elif lat is not None and lat == lon:
        problems.append((f"{path}.lon_column", "lat_column and lon_column must differ"))


def _check_joins(raw: dict[str, Any], project_id: str, problems: _Problems) -> None:
    known_tags: set[str] = set()
    for collection in _all_collections(raw):
        tag = collection.get("data_collection_tag")
        if isinstance(tag, str):
            known_tags.add(tag)
    for workflow in _dicts(raw.get("workflows")):
        for collection in _dicts(workflow.get("data_collections")):
            tag = collection.get("data_collection_tag")
            if isinstance(tag, str):
                known_tags.add(f"{workflow.get('name')}.{tag}")

    names: set[str] = set()
    for index, join in _indexed(raw.get("joins")):
        _check_join(join, f"joins[{index}]", known_tags, names, problems)
        name = join.get("name")
        if isinstance(name, str) and f"joined_{name}" in known_tags:
            problems.append(
                (
                    f"joins[{index}].name",
                    f"the join's table would take the tag 'joined_{name}', which a data collection of this "
                    "project has; rename the join or the collection",
                )
            )
        join["id"] = _check_id(join, f"joins[{index}]", problems) or derive_id(
            "join", project_id, str(join.get("name"))
        )


def _check_join(join: dict[str, Any], path: str, known_tags: set[str], names: set[str], problems: _Problems) -> None:
    name = join.get("name")
    if isinstance(name, str):
        if not JOIN_NAME_PATTERN.match(name):
            problems.append((f"{path}.name", f"invalid join name {name!r}; use 1 to 100 letters, digits, '_' or '-'"))
        elif name in names:
            problems.append((f"{path}.name", f"join name {name!r} is used twice; give each join its own name"))
        names.add(name)

    left, right = join.get("left_dc"), join.get("right_dc")
    if isinstance(left, str) and isinstance(right, str) and left == right:
        problems.append(
            (f"{path}.right_dc", f"left_dc and right_dc are both {left!r}; a join needs two different data collections")
        )
    for side, reference in (("left_dc", left), ("right_dc", right)):
        if isinstance(reference, str) and reference not in known_tags:
            choices = ", ".join(sorted(tag for tag in known_tags if "." not in tag)) or "none"
            problems.append(
                (f"{path}.{side}", f"data collection {reference!r} is not in this project; known tags: {choices}")
            )

    columns = join.get("on_columns")
    if isinstance(columns, list):
        if not columns:
            problems.append((f"{path}.on_columns", "on_columns is empty; list at least one column to join on"))
        elif len(set(map(str, columns))) != len(columns):
            problems.append(
                (f"{path}.on_columns", f"on_columns {columns!r} contains duplicates; list each column once")
            )


def _check_unique_ids(raw: dict[str, Any], problems: _Problems) -> None:
    seen: dict[str, str] = {}

    def claim(value: Any, path: str) -> None:
        if not isinstance(value, str):
            return
        if value in seen:
            problems.append(
                (f"{path}.id", f"id {value!r} is also used by {seen[value]}; every object needs its own id")
            )
            return
        seen[value] = path

    claim(raw.get("id"), "project")
    for w_index, workflow in _indexed(raw.get("workflows")):
        w_path = f"workflows[{w_index}]"
        claim(workflow.get("id"), w_path)
        for d_index, collection in _indexed(workflow.get("data_collections")):
            claim(collection.get("id"), f"{w_path}.data_collections[{d_index}]")
    for d_index, collection in _indexed(raw.get("data_collections")):
        claim(collection.get("id"), f"data_collections[{d_index}]")
