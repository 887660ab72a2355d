"""One JSON error shape for every error response, and the mapping of exceptions to it.

Every 4xx and 5xx body is `{"status_code": <int>, "detail": <str>}`; `detail` is the field
that Depictio clients read. A 500 carries no internals: the exception goes to the log.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import Empty

from api.security import InvalidAccountError
from catalog import (
    BackupTargetError,
    BackupWriteError,
    CatalogError,
    CatalogUnwritableError,
    ConflictError,
    NotFoundError,
)
from catalog.row_filters import StaleCursorError
from config import Settings
from ingestor.uploads import UploadStorageError

logger = logging.getLogger(__name__)


class ErrorBody(msgspec.Struct, kw_only=True):
    status_code: int
    detail: str


# The meaning of each error status in this service, for the OpenAPI document.
_ERROR_DESCRIPTIONS = {
    400: "The request is invalid: a parameter, a header or the body does not fit the operation",
    401: "Not signed in, or the bearer token is invalid or expired; WWW-Authenticate tells which",
    403: "The caller is signed in, but their role does not allow this operation",
    404: "The object does not exist, or the caller may not read it",
    406: "The Accept header names no format that this operation serves",
    409: "The request conflicts with the state of the catalog",
    413: "The request body is larger than the limit of this operation",
    416: "The Range header selects no byte of the file; Content-Range gives the file's size",
    429: "Too many requests of this kind; Retry-After gives the seconds to wait when it is known",
    503: "The catalog is not available, or an upload cannot be stored; try again shortly",
}


def error_responses(*status_codes: int) -> dict[int, ResponseSpec]:
    """Return the OpenAPI responses of an operation's error statuses, each with the one error body.

    503 is always among them, because every operation reads the catalog.
    """
    return {
        status_code: ResponseSpec(ErrorBody, description=_ERROR_DESCRIPTIONS[status_code])
        for status_code in sorted({*status_codes, 503})
    }


def error_response(status_code: int, detail: str, headers: dict[str, str] | None = None) -> Response[ErrorBody]:
    return Response(ErrorBody(status_code=status_code, detail=detail), status_code=status_code, headers=headers)


def _validation_detail(exception: ValidationException) -> str:
    extra: Any = exception.extra
    if isinstance(extra, list) and extra:
        parts = []
        for item in extra:
            if isinstance(item, dict):
                key = item.get("key") or item.get("source") or "request"
                parts.append(f"{key}: {item.get('message', 'invalid value')}")
        if parts:
            return f"invalid request: {'; '.join(parts)}"
    return f"invalid request: {exception.detail}"


# The key of a router's `opt` that names the setting of its request body limit.
BODY_LIMIT_SETTING = "body_limit_setting"


def handle_http_exception(request: Request[Any, Any, Any], exception: HTTPException) -> Response[ErrorBody]:
    if isinstance(exception, ValidationException):
        return error_response(exception.status_code, _validation_detail(exception))
    if isinstance(exception, RequestEntityTooLarge):
        return error_response(413, _too_large_detail(request))
    headers = dict(exception.headers or {})
    return error_response(exception.status_code, str(exception.detail), headers or None)


def _too_large_detail(request: Request[Any, Any, Any]) -> str:
    """Return the detail of a 413 response, naming the limit: a setting of the route's router, or its own fixed limit."""
    handler = request.route_handler
    settings: Settings | None = getattr(request.app.state, "settings", None)
    # A route that sets its own limit overrides its router's, and so the router's setting.
    setting = handler.opt.get(BODY_LIMIT_SETTING) if handler.request_max_body_size is Empty else None
    if settings is not None and setting == "server.max_upload_mb":
        return (
            f"the request body is larger than the upload limit of {settings.server.max_upload_mb} MiB "
            "(server.max_upload_mb); send smaller files, or fewer in one request"
        )
    if settings is not None and setting == "server.max_body_mb":
        return (
            f"the request body is larger than the limit of {settings.server.max_body_mb} MiB "
            "(server.max_body_mb); send a smaller body"
        )
    limit = handler.resolve_request_max_body_size()
    if limit is None:
        return "the request body is too large"
    return f"the request body is larger than {limit // 1024} KiB, the limit of this route; send a smaller body"


def handle_upload_storage(request: Request[Any, Any, Any], exception: UploadStorageError) -> Response[ErrorBody]:
    logger.warning("request %s %s failed: %s", request.method, request.url.path, exception)
    # A full disk or a file size limit, as for a catalog write, so the client gets the same wait.
    return error_response(503, str(exception), headers={"Retry-After": str(UNWRITABLE_RETRY_AFTER_SECONDS)})


def handle_backup_target(request: Request[Any, Any, Any], exception: BackupTargetError) -> Response[ErrorBody]:
    return error_response(400, str(exception))


def handle_backup_write(request: Request[Any, Any, Any], exception: BackupWriteError) -> Response[ErrorBody]:
    # BackupRepository.write logs the failure with the catalog's path.
    return error_response(503, str(exception))


# Seconds a client is asked to wait before it sends a rejected write again.
UNWRITABLE_RETRY_AFTER_SECONDS = 30


def handle_unwritable(request: Request[Any, Any, Any], exception: CatalogUnwritableError) -> Response[ErrorBody]:
    # The catalog logged the failure once at ERROR, so the rejected request gets one INFO line.
    logger.info(
        "request %s %s rejected: the catalog cannot be written: %s", request.method, request.url.path, exception.summary
    )
    return error_response(
        503,
        f"the catalog cannot be written at the moment ({exception.summary}), so this change was not made; "
        "reads still work. Try again later",
        headers={"Retry-After": str(UNWRITABLE_RETRY_AFTER_SECONDS)},
    )


def handle_not_found(request: Request[Any, Any, Any], exception: NotFoundError) -> Response[ErrorBody]:
    return error_response(404, str(exception))


def handle_conflict(request: Request[Any, Any, Any], exception: ConflictError) -> Response[ErrorBody]:
    return error_response(409, str(exception))


def handle_stale_cursor(request: Request[Any, Any, Any], exception: StaleCursorError) -> Response[ErrorBody]:
    return error_response(409, str(exception))


def handle_invalid_account(request: Request[Any, Any, Any], exception: InvalidAccountError) -> Response[ErrorBody]:
    return error_response(400, str(exception))


def handle_recursion(request: Request[Any, Any, Any], exception: RecursionError) -> Response[ErrorBody]:
    # Decoding a request body nested thousands of levels deep exhausts Python's recursion limit.
    logger.info("request %s %s rejected: its body is nested too deeply", request.method, request.url.path)
    return error_response(400, "invalid request: the body is nested too deeply")


def handle_unexpected(request: Request[Any, Any, Any], exception: Exception) -> Response[ErrorBody]:
    logger.exception("request %s %s failed", request.method, request.url.path)
    if isinstance(exception, CatalogError):
        return error_response(503, "the catalog is not available; try again shortly")
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal server error; the service log has the details")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    HTTPException: handle_http_exception,
    NotFoundError: handle_not_found,
    ConflictError: handle_conflict,
    StaleCursorError: handle_stale_cursor,
    InvalidAccountError: handle_invalid_account,
    RecursionError: handle_recursion,
    UploadStorageError: handle_upload_storage,
    BackupTargetError: handle_backup_target,
    BackupWriteError: handle_backup_write,
    CatalogUnwritableError: handle_unwritable,
    Exception: handle_unexpected,
}
