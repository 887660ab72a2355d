"""Rename a data collection, or remove it, inside a project sent over the API.

Joins name collections by tag (`tag` or `workflow.tag`), and links by id and tag, so a
rename updates them too. A removal leaves no join pointing at nothing: a collection that
a join uses cannot be removed until the join is.
"""

from __future__ import annotations

import msgspec

from catalog.errors import ConflictError, NotFoundError
from config import DataCollection, Join, Link, Project


def renamed_collection(project: Project, collection_id: str, new_tag: str) -> Project:
    """Return the project with the collection's tag set to `new_tag`.

    Raise ConflictError when another collection of the same workflow (or, for a collection
    outside any workflow, of the project) has that tag.
    """
    workflow_name, siblings = _siblings(project, collection_id)
    old_tag = next(dc.data_collection_tag for dc in siblings if dc.id == collection_id)
    duplicates = [dc for dc in siblings if dc.data_collection_tag == new_tag and dc.id != collection_id]
    if duplicates:
        where = f"workflow {workflow_name!r}" if workflow_name is not None else f"project {project.name!r}"
        raise ConflictError(
            f"new_name: {where} already has a data collection tagged {new_tag!r} ({duplicates[0].id}); "
            "tags are unique in a workflow, so choose another name"
        )

    def rename(collection: DataCollection) -> DataCollection:
        if collection.id != collection_id:
            return collection
        return msgspec.structs.replace(collection, data_collection_tag=new_tag)

    references = {old_tag: new_tag}
    if workflow_name is not None:
        references[f"{workflow_name}.{old_tag}"] = f"{workflow_name}.{new_tag}"
    return msgspec.structs.replace(
        project,
        workflows=[
            msgspec.structs.replace(workflow, data_collections=[rename(dc) for dc in workflow.data_collections])
            for workflow in project.workflows
        ],
        data_collections=[rename(dc) for dc in project.data_collections],
        joins=[_renamed_join(join, references) for join in project.joins],
        links=[_renamed_link(link, collection_id, old_tag, new_tag) for link in project.links],
    )


def without_collection(project: Project, collection_id: str) -> Project:
    """Return the project without the collection and the links that name it.

    Raise ConflictError naming the first join that uses the collection.
    """
    workflow_name, siblings = _siblings(project, collection_id)
    tag = next(dc.data_collection_tag for dc in siblings if dc.id == collection_id)
    names = {tag} | ({f"{workflow_name}.{tag}"} if workflow_name is not None else set())
    for index, join in enumerate(project.joins):
        if join.left_dc in names or join.right_dc in names:
            raise ConflictError(
                f"data collection {tag!r} ({collection_id}) is used by joins[{index}] ({join.name!r}); "
                "remove the join with PUT /projects/update first"
            )
    return msgspec.structs.replace(
        project,
        workflows=[
            msgspec.structs.replace(
                workflow, data_collections=[dc for dc in workflow.data_collections if dc.id != collection_id]
            )
            for workflow in project.workflows
        ],
        data_collections=[dc for dc in project.data_collections if dc.id != collection_id],
        links=[link for link in project.links if not _names_collection(link, collection_id, tag)],
    )


def _siblings(project: Project, collection_id: str) -> tuple[str | None, list[DataCollection]]:
    """Return the name of the collection's workflow (None outside workflows) and the collections beside it."""
    for workflow in project.workflows:
        if any(dc.id == collection_id for dc in workflow.data_collections):
            return workflow.name, workflow.data_collections
    if any(dc.id == collection_id for dc in project.data_collections):
        return None, project.data_collections
    raise NotFoundError("data collection", collection_id)


def _renamed_join(join: Join, references: dict[str, str]) -> Join:
    return msgspec.structs.replace(
        join,
        left_dc=references.get(join.left_dc, join.left_dc),
        right_dc=references.get(join.right_dc, join.right_dc),
    )


def _renamed_link(link: Link, collection_id: str, old_tag: str, new_tag: str) -> Link:
    if link.source_dc_id == collection_id or (link.source_dc_id is None and link.source_dc_tag == old_tag):
        link = msgspec.structs.replace(link, source_dc_tag=new_tag)
    if link.target_dc_id == collection_id or (link.target_dc_id is None and link.target_dc_tag == old_tag):
        link = msgspec.structs.replace(link, target_dc_tag=new_tag)
    return link


def _names_collection(link: Link, collection_id: str, tag: str) -> bool:
    """Return True when the link starts or ends at the collection, by id or, without an id, by tag."""
    source = link.source_dc_id == collection_id or (link.source_dc_id is None and link.source_dc_tag == tag)
    target = link.target_dc_id == collection_id or (link.target_dc_id is None and link.target_dc_tag == tag)
    return source or target
