"""The joins of a project: the data collection that serves each persisted join, and what each join reads.

A persisted join (`persist: true`, the default) is a table data collection of its own,
with the join's id and the tag `joined_{name}`. As Depictio does, that collection goes
into the workflow named by the join's `workflow_name`, or to the project's own
collections when no workflow has that name.
"""

from __future__ import annotations

import msgspec

from config import DataCollection, DataCollectionConfig, Granularity, Join, Project

JOINED_TAG_PREFIX = "joined_"
# The metatype that keeps `depictio_run_id` out of a join's keys, compared exactly as Depictio 1.5.1 does.
METADATA_METATYPE = "Metadata"
# `outer` is the older name of a full join.
_HOW = {"inner": "inner", "left": "left", "right": "right", "outer": "full", "full": "full"}


class JoinSide(msgspec.Struct, kw_only=True, frozen=True):
    collection_id: str
    tag: str
    metatype: str | None


class JoinPlan(msgspec.Struct, kw_only=True, frozen=True):
    """One persisted join with its two sides resolved to data collections."""

    join_id: str
    name: str
    # inner, left, right or full.
    how: str
    on_columns: list[str]
    left: JoinSide | None
    right: JoinSide | None
    granularity: Granularity | None
    # Why a side could not be resolved, when one could not.
    problem: str | None = None

    @property
    def definition(self) -> str:
        """Return the parts of the join that decide its result, as JSON, for its inputs fingerprint."""
        return msgspec.json.encode([self.how, self.on_columns, self.left, self.right, self.granularity]).decode()


def joined_collection(join: Join) -> DataCollection:
    """Return the data collection that serves a persisted join's table."""
    return DataCollection(
        id=join.id,
        data_collection_tag=f"{JOINED_TAG_PREFIX}{join.name}",
        description=join.description or f"Join of {join.left_dc} and {join.right_dc} on {', '.join(join.on_columns)}",
        config=DataCollectionConfig(
            type="table",
            source="joined",
            metatype="Aggregate",
            # Depictio 1.5.1 declares its joined tables as parquet; depictiod reads no file for them.
            dc_specific_properties={"format": "parquet"},
        ),
    )


def with_joined_collections(project: Project) -> Project:
    """Return the project with a data collection for each persisted join that has none yet.

    A collection that already has the join's id is kept as it is: a Depictio client sends
    back the project it read, with those collections in it.
    """
    present = {collection.id for collection in _all_collections(project)}
    workflows = list(project.workflows)
    project_level = list(project.data_collections)
    for join in project.joins:
        if not join.persist or join.id is None or join.id in present:
            continue
        collection = joined_collection(join)
        present.add(join.id)
        index = next((i for i, w in enumerate(workflows) if w.name == join.workflow_name), None)
        if index is None:
            project_level.append(collection)
            continue
        workflow = workflows[index]
        workflows[index] = msgspec.structs.replace(workflow, data_collections=[*workflow.data_collections, collection])
    return msgspec.structs.replace(project, workflows=workflows, data_collections=project_level)


def join_plans(project: Project) -> list[JoinPlan]:
    """Return a plan for each persisted join of the project; a `persist: false` join is never built."""
    plans = []
    for join in project.joins:
        if not join.persist or join.id is None:
            continue
        left = _resolve(project, join.left_dc, join.workflow_name)
        right = _resolve(project, join.right_dc, join.workflow_name)
        problem = None
        for side, reference, found in (("left_dc", join.left_dc, left), ("right_dc", join.right_dc, right)):
            if found is None:
                problem = f"{side} {reference!r} names no data collection of the project"
                break
        clashing = next((c for c in _all_collections(project) if c.id == join.id and c.config.source != "joined"), None)
        if clashing is not None:
            problem = (
                f"the join's id {join.id!r} is also the id of data collection {clashing.data_collection_tag!r}; "
                "give the join an id of its own"
            )
        plans.append(
            JoinPlan(
                join_id=join.id,
                name=join.name,
                how=_HOW[join.how],
                on_columns=list(join.on_columns),
                left=_side(left),
                right=_side(right),
                granularity=join.granularity,
                problem=problem,
            )
        )
    return plans


def _side(collection: DataCollection | None) -> JoinSide | None:
    if collection is None or collection.id is None:
        return None
    return JoinSide(
        collection_id=collection.id, tag=collection.data_collection_tag, metatype=collection.config.metatype
    )


def _resolve(project: Project, reference: str, workflow_name: str | None) -> DataCollection | None:
    """Find the collection that a join names: `workflow.tag`, or a tag looked up as Depictio 1.5.1 does.

    A bare tag is looked up in the join's `workflow_name` first, then in every workflow in
    order, then among the project's own collections.
    """
    if "." in reference:
        workflow, tag = reference.split(".", 1)
        return _find(tag, [w.data_collections for w in project.workflows if w.name == workflow])
    preferred = [w.data_collections for w in project.workflows if w.name == workflow_name]
    return _find(reference, [*preferred, *(w.data_collections for w in project.workflows), project.data_collections])


def _find(tag: str, groups: list[list[DataCollection]]) -> DataCollection | None:
    for collections in groups:
        for collection in collections:
            if collection.data_collection_tag == tag:
                return collection
    return None


def _all_collections(project: Project) -> list[DataCollection]:
    return [*(c for w in project.workflows for c in w.data_collections), *project.data_collections]
