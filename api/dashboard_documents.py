"""Dashboard documents: read from YAML or JSON, checked against a project, written back as YAML or JSON.

Depictio writes dashboards in two forms. Files (its `DashboardDataLite` YAML) list
`components` that name their data by tags: `workflow_tag` (`engine/name` or the
workflow's name) and `data_collection_tag`. Its viewer saves `stored_metadata`, whose
components name their data by ids: `wf_id` and `dc_id`. depictiod stores either form as
sent and checks that every data collection named, in either form, is one of the project's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import yaml
from litestar.exceptions import ClientException

from catalog import DashboardRecord
from config import Project

# Bounds on a document once parsed. YAML aliases can repeat one node many times, so a
# small file may still expand to a huge document. These bounds reject it before it is stored.
MAX_DOCUMENT_NODES = 500_000
MAX_DOCUMENT_DEPTH = 64
MAX_TITLE_LENGTH = 500
# References listed in one error message. The message gives the count of the others.
MAX_LISTED_PROBLEMS = 10

# Fields that depictiod sets itself. A client's values for them are not stored with the
# dashboard's content: they are read as requests (title, tab fields) or ignored.
MANAGED_FIELDS = frozenset(
    {
        "_id",
        "id",
        "dashboard_id",
        "project_id",
        "project_tag",
        "title",
        "version",
        "permissions",
        "is_public",
        "last_saved_ts",
        "creation_time",
        "screenshot_ts",
        "source_key",
        "is_main_tab",
        "parent_dashboard_id",
        "parent_dashboard_tag",
        "parent_dashboard_title",
        "tab_order",
        "project_realtime",
        "inherited_brand_theme",
        "inherited_category_colors",
    }
)
# Fields of a viewer component (`stored_metadata`) that contain ids of one project. A YAML
# export names the data by tags instead.
_COMPONENT_ID_FIELDS = frozenset({"index", "wf_id", "dc_id", "dc_config", "wf_tag", "project_id"})


@dataclass(frozen=True)
class DashboardSpec:
    """One dashboard as a client sent it: its title, tab fields and content."""

    title: str
    definition: dict[str, Any]
    is_main_tab: bool = True
    parent_title: str | None = None
    tab_order: int = 0


@dataclass(frozen=True)
class YamlImport:
    """A dashboard YAML file: one dashboard, or a main dashboard with its tabs."""

    project_tag: str | None
    main: DashboardSpec
    # The tabs of `main_dashboard`, or None for a file of one dashboard.
    tabs: list[DashboardSpec] | None = None


def invalid(message: str) -> ClientException:
    return ClientException(f"invalid dashboard: {message}")


def parse_yaml(body: bytes) -> YamlImport:
    """Read a dashboard YAML file: `{title, components, ...}` or `{main_dashboard: {...}, tabs: [...]}`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise invalid(f"the body is not UTF-8 text (byte {error.start}); send the YAML file as UTF-8") from None
    try:
        loaded = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as error:
        raise invalid(f"the body is not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:
        raise invalid(f"the YAML is nested more than {MAX_DOCUMENT_DEPTH} levels deep") from None
    except ValueError as error:
        # Python refuses to read integers of more than 4,300 digits.
        raise invalid(f"the YAML contains a value that cannot be read: {error}") from None
    document = json_safe(loaded)
    if not isinstance(document, dict):
        raise invalid("the YAML must be a mapping with a title, or with main_dashboard and tabs")

    if "main_dashboard" not in document:
        return YamlImport(project_tag=_optional_text(document, "project_tag", ""), main=dashboard_spec(document, ""))

    main = document["main_dashboard"]
    if not isinstance(main, dict):
        raise invalid("main_dashboard must be a mapping with the main dashboard's title and components")
    tabs = document.get("tabs") or []
    if not isinstance(tabs, list):
        raise invalid("tabs must be a list of dashboards")
    specs: list[DashboardSpec] = []
    for position, tab in enumerate(tabs):
        where = f"tabs[{position}]"
        if not isinstance(tab, dict):
            raise invalid(f"{where} must be a mapping with the tab's title and components")
        spec = dashboard_spec(tab, where, in_family=True)
        if any(other.title == spec.title for other in specs):
            raise invalid(
                f"{where}.title {spec.title!r} is the title of another tab of this file; give each tab its own"
            )
        specs.append(spec)
    spec = dashboard_spec(main, "main_dashboard", in_family=True)
    return YamlImport(project_tag=_optional_text(main, "project_tag", "main_dashboard."), main=spec, tabs=specs)


def dashboard_spec(mapping: dict[str, Any], where: str, in_family: bool = False) -> DashboardSpec:
    """Read one dashboard's title, tab fields and content. `where` names it in error messages.

    In a multi-tab file the tab fields come from the file's structure, so those of each
    dashboard are ignored.
    """
    prefix = f"{where}." if where else ""
    title = mapping.get("title")
    if not isinstance(title, str) or not title.strip():
        raise invalid(f"{prefix}title is missing or empty; every dashboard needs a title")
    if len(title) > MAX_TITLE_LENGTH:
        raise invalid(f"{prefix}title has {len(title)} characters; the maximum is {MAX_TITLE_LENGTH}")
    definition = {key: value for key, value in mapping.items() if key not in MANAGED_FIELDS}
    for key in ("components", "stored_metadata"):
        if key in definition and not isinstance(definition[key], list):
            raise invalid(f"{prefix}{key} must be a list of components")
    if in_family:
        return DashboardSpec(title=title, definition=definition)

    is_main_tab = mapping.get("is_main_tab", True)
    if not isinstance(is_main_tab, bool):
        raise invalid(f"{prefix}is_main_tab must be true or false, not {is_main_tab!r}")
    tab_order = mapping.get("tab_order", 0)
    if not isinstance(tab_order, int) or isinstance(tab_order, bool) or tab_order < 0:
        raise invalid(f"{prefix}tab_order must be a whole number of at least 0, not {tab_order!r}")
    parent_title = _optional_text(mapping, "parent_dashboard_tag", prefix)
    if not is_main_tab and parent_title is None:
        raise invalid(
            f"{prefix}parent_dashboard_tag is missing: a child tab (is_main_tab: false) names its main "
            "dashboard by title there"
        )
    return DashboardSpec(
        title=title,
        definition=definition,
        is_main_tab=is_main_tab,
        parent_title=parent_title if not is_main_tab else None,
        tab_order=tab_order if not is_main_tab else 0,
    )


def _optional_text(mapping: dict[str, Any], key: str, prefix: str) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{prefix}{key} must be a non-empty string, not {value!r}")
    return value


class _SafeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader without its reading of dates, so a date stays the text that the file has."""


_SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def json_safe(value: Any) -> Any:
    """Return `value` as JSON data (text keys, no dates), or raise when it is too large or too deep.

    The walk counts every node it visits, so a document whose aliases repeat nodes, or
    that refers to itself, fails on the node bound instead of growing without end.
    """
    budget = [MAX_DOCUMENT_NODES]
    return _json_value(value, 0, budget)


def _json_value(value: Any, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise invalid(f"the document has more than {MAX_DOCUMENT_NODES} values; split it or remove repeated parts")
    if depth > MAX_DOCUMENT_DEPTH:
        raise invalid(f"the document is nested more than {MAX_DOCUMENT_DEPTH} levels deep")
    if isinstance(value, dict):
        return {_json_key(key): _json_value(item, depth + 1, budget) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item, depth + 1, budget) for item in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        raise invalid("the document contains binary data (!!binary); dashboards contain text only")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise invalid(f"the document contains a value of type {type(value).__name__}, which JSON cannot represent")


def _json_key(key: Any) -> str:
    """Return a mapping key as JSON text, as `json.dumps` writes YAML's `1:`, `true:` or `null:` keys."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int | float):
        return str(key)
    raise invalid(f"the document has a mapping key of type {type(key).__name__}; keys must be text")


@dataclass(frozen=True)
class Reference:
    """A data collection that one component names."""

    component: str
    workflow_tag: str | None
    collection_tag: str | None = None
    collection_id: str | None = None


@dataclass
class CollectionIndex:
    """The workflows and data collections of one project, found by the tags and ids dashboards use."""

    project: Project
    _tags_by_id: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    _workflow_ids: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for workflow in self.project.workflows:
            for collection in workflow.data_collections:
                if collection.id:
                    self._tags_by_id[collection.id] = (_workflow_tag(workflow), collection.data_collection_tag)
                    if workflow.id:
                        self._workflow_ids[collection.id] = workflow.id
        for collection in self.project.data_collections:
            if collection.id:
                self._tags_by_id[collection.id] = (None, collection.data_collection_tag)

    def tags_of(self, collection_id: str) -> tuple[str | None, str] | None:
        """Return the workflow tag (`engine/name`, None at project level) and collection tag of an id."""
        return self._tags_by_id.get(collection_id)

    def workflow_id_of(self, collection_id: str) -> str | None:
        return self._workflow_ids.get(collection_id)

    def resolve(self, reference: Reference) -> str | None:
        """Return the id of the collection that `reference` names, or None when the project lacks it."""
        if reference.collection_id is not None:
            return reference.collection_id if reference.collection_id in self._tags_by_id else None
        workflows = self.project.workflows
        if reference.workflow_tag is not None:
            workflows = [workflow for workflow in workflows if _names_workflow(reference.workflow_tag, workflow)]
        candidates = [collection for workflow in workflows for collection in workflow.data_collections]
        if reference.workflow_tag is None:
            candidates += self.project.data_collections
        for collection in candidates:
            if collection.data_collection_tag == reference.collection_tag:
                return collection.id
        return None

    def describe_missing(self, reference: Reference) -> str:
        """Say what the project lacks for a reference that does not resolve."""
        if reference.collection_id is not None:
            return f"{reference.component}: data collection id {reference.collection_id!r}"
        tag = reference.collection_tag
        if reference.workflow_tag is None:
            return f"{reference.component}: data collection {tag!r}"
        if not any(_names_workflow(reference.workflow_tag, workflow) for workflow in self.project.workflows):
            return f"{reference.component}: workflow {reference.workflow_tag!r} (of data collection {tag!r})"
        return f"{reference.component}: data collection {tag!r} in workflow {reference.workflow_tag!r}"


def _workflow_tag(workflow: Any) -> str:
    return f"{workflow.engine.name}/{workflow.name}"


def _names_workflow(tag: str, workflow: Any) -> bool:
    """Tell whether a dashboard's workflow tag (`engine/name`, the name or the workflow_tag) names `workflow`."""
    if tag in (workflow.name, workflow.workflow_tag, _workflow_tag(workflow)):
        return True
    _, _, name = tag.partition("/")
    return bool(name) and name in (workflow.name, workflow.workflow_tag)


def references(definition: dict[str, Any]) -> Iterator[Reference]:
    """Yield every data collection that the components of a dashboard name."""
    for key in ("components", "stored_metadata"):
        components = definition.get(key)
        if not isinstance(components, list):
            continue
        for position, component in enumerate(components):
            if isinstance(component, dict):
                yield from _component_references(component, f"{key}[{position}]")


def _component_references(component: dict[str, Any], where: str) -> Iterator[Reference]:
    label = component.get("tag") or component.get("index")
    name = f"component {label!r}" if isinstance(label, str) and label else where
    workflow = _text(component.get("workflow_tag"))

    collection_id = _text(component.get("dc_id"))
    if collection_id is not None:
        yield Reference(name, workflow, collection_id=collection_id)
    elif (tag := _text(component.get("data_collection_tag"))) is not None:
        yield Reference(name, workflow, collection_tag=tag)

    # A map's GeoJSON and an advanced visualisation's extra inputs are read from the component's workflow.
    if (tag := _text(component.get("geojson_dc_tag"))) is not None:
        yield Reference(name, workflow, collection_tag=tag)
    config = component.get("config")
    if isinstance(config, dict):
        for key, value in config.items():
            if key.endswith("_dc_tag") and (tag := _text(value)) is not None:
                yield Reference(name, workflow, collection_tag=tag)

    # A text tile's live values may come from any workflow of the project.
    values = component.get("values")
    if component.get("component_type") == "text" and isinstance(values, dict):
        for spec in values.values():
            if isinstance(spec, dict) and (tag := _text(spec.get("dc"))) is not None:
                yield Reference(name, None, collection_tag=tag)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def check_references(index: CollectionIndex, project_name: str, specs: list[DashboardSpec]) -> None:
    """Raise a 400 naming every data collection that the dashboards name and the project lacks."""
    problems: list[str] = []
    for spec in specs:
        for reference in references(spec.definition):
            if index.resolve(reference) is None:
                problems.append(f"dashboard {spec.title!r}, {index.describe_missing(reference)}")
    if not problems:
        return
    listed = "; ".join(problems[:MAX_LISTED_PROBLEMS])
    more = f" and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
    raise invalid(
        f"project {project_name!r} has no such data collection: {listed}{more}; "
        "add the collection to the project or correct the component's tags"
    )


def rebind_collection_ids(definition: dict[str, Any], index: CollectionIndex) -> dict[str, Any]:
    """Return `definition` with each viewer component bound to this project's collection of the same tags.

    A JSON export names collections by the ids of the project it came from. A component
    whose `dc_id` is not one of this project's, but whose tags name one of its
    collections, takes that collection's id. Any other component stays as it is.
    """
    stored = definition.get("stored_metadata")
    if not isinstance(stored, list):
        return definition
    rebound = []
    for component in stored:
        if not isinstance(component, dict) or not isinstance(component.get("dc_id"), str):
            rebound.append(component)
            continue
        collection_id = index.resolve(Reference("", None, collection_id=component["dc_id"]))
        tag = _text(component.get("data_collection_tag"))
        dc_config = component.get("dc_config")
        if tag is None and isinstance(dc_config, dict):
            tag = _text(dc_config.get("data_collection_tag"))
        if collection_id is None and tag is not None:
            workflow = _text(component.get("workflow_tag")) or _text(component.get("wf_tag"))
            collection_id = index.resolve(Reference("", workflow, collection_tag=tag))
        if collection_id is None:
            rebound.append(component)
            continue
        updated = {**component, "dc_id": collection_id}
        workflow_id = index.workflow_id_of(collection_id)
        if workflow_id is not None:
            updated["wf_id"] = workflow_id
        rebound.append(updated)
    return {**definition, "stored_metadata": rebound}


def collection_refs(index: CollectionIndex, definition: dict[str, Any]) -> list[tuple[str | None, str, str]]:
    """Return (workflow tag, collection tag, id) of each collection a dashboard reads, once each."""
    found: dict[str, tuple[str | None, str, str]] = {}
    for reference in references(definition):
        collection_id = index.resolve(reference)
        tags = index.tags_of(collection_id) if collection_id else None
        if collection_id is not None and tags is not None and collection_id not in found:
            found[collection_id] = (tags[0], tags[1], collection_id)
    return list(found.values())


def export_yaml(
    record: DashboardRecord,
    project_name: str,
    index: CollectionIndex,
    tabs: list[DashboardRecord],
    parent_title: str | None,
) -> str:
    """Write a dashboard as a YAML file that `POST /dashboards/import/yaml` reads back.

    A main dashboard with tabs becomes a multi-tab file; a child tab names its main
    dashboard by title.
    """
    document: dict[str, Any]
    if record.is_main_tab and tabs:
        main = {"title": record.title, "project_tag": project_name, **file_definition(record.definition, index)}
        tab_documents = [
            {"title": tab.title, "tab_order": tab.tab_order, **file_definition(tab.definition, index)} for tab in tabs
        ]
        document = {"main_dashboard": main, "tabs": tab_documents}
    else:
        document = {"title": record.title, "project_tag": project_name}
        if not record.is_main_tab:
            document.update(is_main_tab=False, parent_dashboard_tag=parent_title, tab_order=record.tab_order)
        document.update(file_definition(record.definition, index))
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def file_definition(definition: dict[str, Any], index: CollectionIndex) -> dict[str, Any]:
    """Return a dashboard's content in the file form: viewer components become tagged `components`.

    NOTE: a viewer component keeps every field but its ids, so it may carry fields that
    Depictio's YAML schema of a later release no longer accepts.
    """
    stored = definition.get("stored_metadata")
    if "components" in definition or not isinstance(stored, list):
        return dict(definition)
    converted = {key: value for key, value in definition.items() if key != "stored_metadata"}
    converted["components"] = [_file_component(item, index) for item in stored if isinstance(item, dict)]
    return converted


def _file_component(component: dict[str, Any], index: CollectionIndex) -> dict[str, Any]:
    result: dict[str, Any] = {}
    tag = component.get("tag") or component.get("index")
    if tag is not None:
        result["tag"] = tag
    tags = index.tags_of(component["dc_id"]) if isinstance(component.get("dc_id"), str) else None
    if tags is not None:
        if tags[0] is not None:
            result["workflow_tag"] = tags[0]
        result["data_collection_tag"] = tags[1]
    for key, value in component.items():
        if key not in _COMPONENT_ID_FIELDS and key not in result:
            result[key] = value
    return result
