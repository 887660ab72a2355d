"""`GET /events`: a server-sent event stream of changes in the projects the caller may read."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Annotated, Any

from anyio import to_thread
from litestar import Controller, Request, get
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent

from api.access import Access
from api.auth import request_token
from api.errors import ErrorBody, error_responses
from api.events import (
    RETRY_MILLISECONDS,
    EventStream,
    GapData,
    StreamAccess,
    StreamLimits,
    StreamRequest,
    parse_last_event_id,
    parse_max_seconds,
    parse_types,
)
from catalog import EVENT_TYPES, GAP_EVENT, Catalog, EventData
from config import Settings

logger = logging.getLogger(__name__)

_DESCRIPTION = (
    "A `text/event-stream` of changes in the projects that the caller may read. Each event has an "
    "increasing `id`, an `event` type and JSON `data` (the EventData schema): "
    f"{', '.join(f'`{name}`' for name in EVENT_TYPES)}. A client that reconnects with the "
    "`Last-Event-ID` header (or the `last_event_id` query parameter; the header wins) first receives "
    "the events it missed, from a history of the newest `catalog.event_history` events. When some of "
    f"them are no longer there, or the id is from before the service started, the first event is "
    f"`{GAP_EVENT}` and the client should reload its state. Access is checked again for every event, so a "
    "permission change applies to open streams within about a second, and a revoked or expired token "
    "ends the stream. Comments (`: keep-alive`) come every `server.event_keepalive_seconds` while "
    "nothing happens. More than `server.event_streams` open streams in total, or "
    "`server.event_streams_per_user` for one user, get 429. The stream ends when the service stops."
)


# The query parameters of GET /events; any other is a mistake worth a 400.
_QUERY_PARAMETERS = frozenset({"project_id", "types", "last_event_id", "max_seconds"})
_EVENT_STREAM = "text/event-stream"


@dataclass
class _EventStreamOperation(Operation):
    """The OpenAPI operation of the stream, whose schema describes one event with its JSON `data`.

    OpenAPI 3.1 does not say how to describe an event stream. schemathesis 4, like the
    `itemSchema` of OpenAPI 3.2, reads the schema as that of one event: an object of its
    fields (`event`, `data`, `id`, `retry`), where `contentSchema` describes the JSON in `data`.
    """

    def __post_init__(self) -> None:
        responses = dict(self.responses or {})
        stream = responses.get("200")
        media = stream.content.get(_EVENT_STREAM) if isinstance(stream, OpenAPIResponse) and stream.content else None
        if isinstance(stream, OpenAPIResponse) and media is not None:
            event = Schema(
                type=OpenAPIType.OBJECT,
                required=["data"],
                properties={
                    "event": Schema(type=OpenAPIType.STRING, description="the event type"),
                    "id": Schema(type=OpenAPIType.STRING, description=f"the event id; {GAP_EVENT} has none"),
                    "retry": Schema(type=OpenAPIType.INTEGER, description="milliseconds before a reconnection"),
                    "data": Schema(
                        type=OpenAPIType.STRING,
                        content_media_type="application/json",
                        content_schema=media.schema,
                    ),
                },
            )
            stream.content = {_EVENT_STREAM: OpenAPIMediaType(schema=event)}
        self.responses = responses


class EventController(Controller):
    path = "/events"
    tags = ["events"]

    @get(
        "/",
        opt={"access": "signed_in"},
        summary="Stream change events: runs, files, tables, schemas and scans (server-sent events)",
        description=_DESCRIPTION,
        media_type=_EVENT_STREAM,
        operation_class=_EventStreamOperation,
        responses={
            **error_responses(400, 401, 404, 429),
            200: ResponseSpec(
                EventData | GapData,
                media_type=_EVENT_STREAM,
                description=f"Server-sent events; the `data` of each is EventData, or GapData for {GAP_EVENT}",
            ),
            429: ResponseSpec(ErrorBody, description="Too many open event streams, for the caller or in total"),
        },
    )
    async def stream_events(
        self,
        request: Request[Any, Any, Any],
        access: NamedDependency[Access],
        project_id: Annotated[str | None, QueryParameter(description="only events of this project")] = None,
        types: Annotated[
            str | None, QueryParameter(description=f"event types separated by commas, of {', '.join(EVENT_TYPES)}")
        ] = None,
        last_event_id: Annotated[
            str | None,
            QueryParameter(description="resume after this event id, for clients that cannot set Last-Event-ID"),
        ] = None,
        last_event_id_header: Annotated[
            str | None, HeaderParameter(name="Last-Event-ID", description="resume after this event id")
        ] = None,
        max_seconds: Annotated[
            float | None,
            QueryParameter(
                description="end the stream after this many seconds; 0 sends the missed events and ends at once"
            ),
        ] = None,
    ) -> ServerSentEvent:
        user = access.signed_in_user()
        unknown = sorted(set(request.query_params) - _QUERY_PARAMETERS)
        if unknown:
            raise ClientException(
                f"invalid request: unknown parameter {unknown[0][:40]!r}; use {', '.join(sorted(_QUERY_PARAMETERS))}"
            )
        stream_request = StreamRequest(
            project_id=project_id,
            types=parse_types(types),
            last_event_id=parse_last_event_id(last_event_id_header, last_event_id),
            max_seconds=parse_max_seconds(max_seconds),
        )
        if project_id is not None:
            await to_thread.run_sync(access.project, project_id, "read")

        state = request.app.state
        settings: Settings = state.settings
        limits: StreamLimits = state.event_stream_limits
        token = request_token(request)
        assert token is not None, "a signed-in request carries a bearer token or a session cookie"
        release = limits.acquire(user.id)
        catalog: Catalog = access.catalog
        subscription, missed, gap = catalog.events.subscribe(asyncio.get_running_loop(), stream_request.last_event_id)
        stream = EventStream(
            subscription,
            missed,
            gap,
            stream_request,
            StreamAccess(catalog, access.policy, state.tokens, token, user),
            settings.server.event_keepalive_seconds,
            release,
        )
        logger.info(
            "event stream of user %s opened: project %s, %d event types, after id %s, %d missed events",
            user.id,
            project_id or "any",
            len(stream_request.types),
            stream_request.last_event_id,
            len(missed),
        )
        # The stream releases its place when it ends; the task covers a client gone before the first event.
        return ServerSentEvent(
            stream.messages(), retry_duration=RETRY_MILLISECONDS, background=BackgroundTask(stream.close)
        )
