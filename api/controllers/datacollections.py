"""`/datacollections`: data collection documents."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath

from api.access import Access
from api.schemas import rename_ids


class DataCollectionController(Controller):
    path = "/datacollections"
    tags = ["datacollections"]

    @get(
        "/specs/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        summary="The data collection as a raw document (`_id` keys)",
    )
    def specs(self, access: NamedDependency[Access], data_collection_id: FromPath[str]) -> dict[str, Any]:
        record, _ = access.collection(data_collection_id)
        document: dict[str, Any] = rename_ids(msgspec.to_builtins(record.collection))
        return document

    @get(
        "/get_tag_from_id/{data_collection_id:str}",
        sync_to_thread=True,
        opt={"access": "read"},
        summary="The data collection's tag, as a bare JSON string",
        media_type=MediaType.JSON,
    )
    def get_tag_from_id(self, access: NamedDependency[Access], data_collection_id: FromPath[str]) -> str:
        record, _ = access.collection(data_collection_id)
        # Litestar sends a returned str as it is, so the JSON quoting happens here.
        return msgspec.json.encode(record.collection.data_collection_tag).decode()
