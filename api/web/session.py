"""Sign-in, sign-out and renewal of the web page's session, kept in two HttpOnly cookies.

`depictiod_session` contains an access token; the API's authentication middleware reads it on
GET requests (api.auth). `depictiod_refresh` contains the refresh token and is sent only
to the paths under `/session`: `/session/refresh` exchanges it for a new pair when the
session expired, and `/session/logout` revokes it. Both cookies are SameSite=Lax, so other
sites' pages cannot send them with their requests, and the form posts here also check the
Origin header.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, TooManyRequestsException
from litestar.params import Body, FromQuery
from litestar.response import Redirect

from api.auth import SESSION_COOKIE
from api.controllers.auth import sign_in
from api.tokens import InvalidTokenError, IssuedToken, TokenService
from api.web.render import render_page

logger = logging.getLogger(__name__)

REFRESH_COOKIE = "depictiod_refresh"
# The refresh cookie goes to the paths under /session only: renewal and sign-out.
SESSION_PATH = "/session"
REFRESH_PATH = "/session/refresh"
LOGOUT_PATH = "/session/logout"
MAX_FORM_FIELD = 1024
RENEWAL_REUSE_SECONDS = 30.0


class Renewals:
    """Renew sessions so that several tabs renewing with one refresh cookie at once all stay signed in.

    A refresh token works once, and presenting it again revokes the whole session, as a
    theft would. Two tabs that reload at the same moment send the same cookie, so the
    token pair that a refresh token produced is kept for RENEWAL_REUSE_SECONDS and given
    to every request that presents it in that window. The pairs stay in this process's
    memory only.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # sha256 of the refresh token -> (the pair it produced, time.monotonic() of that).
        self._recent: dict[str, tuple[IssuedToken, float]] = {}

    def renew(self, tokens: TokenService, refresh_token: str) -> IssuedToken:
        """Return the new pair for `refresh_token`; raise InvalidTokenError when it cannot be refreshed."""
        key = hashlib.sha256(refresh_token.encode()).hexdigest()
        with self._lock:
            now = time.monotonic()
            self._recent = {k: v for k, v in self._recent.items() if now - v[1] < RENEWAL_REUSE_SECONDS}
            recent = self._recent.get(key)
            if recent is not None:
                return recent[0]
            issued = tokens.refresh(refresh_token)
            self._recent[key] = (issued, now)
            return issued


class SignInForm(msgspec.Struct, kw_only=True):
    email: str = ""
    password: str = ""
    next: str = "/"


def local_path(target: str | None) -> str:
    """Return `target` when it is a path of this site, else `/`: a sign-in never sends the browser elsewhere."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or any(ord(character) < 32 for character in target):
        return "/"
    return target


def sign_in_url(next_path: str) -> str:
    return f"/login?next={quote(local_path(next_path), safe='/')}"


def renew_url(next_path: str) -> str:
    return f"{REFRESH_PATH}?next={quote(local_path(next_path), safe='/')}"


def check_same_origin(request: Request[Any, Any, Any]) -> None:
    """Reject a form post whose Origin header, or Referer header without an Origin, names another site (403)."""
    origin = request.headers.get("origin")
    source = origin if origin is not None else request.headers.get("referer")
    if source is None:
        return
    host = request.headers.get("host", "")
    try:
        netloc = urlsplit(source).netloc
    except ValueError:
        netloc = None
    if source == "null" or netloc != host:
        raise PermissionDeniedException(
            f"the form was sent from {source[:200]!r}, not from this site; open the page here"
        )


def _session_cookies(request: Request[Any, Any, Any], issued: IssuedToken) -> list[Cookie]:
    now = datetime.now(UTC).replace(tzinfo=None)
    record = issued.record
    secure = request.url.scheme == "https"
    refresh_expires = record.refresh_expire_datetime or record.expire_datetime
    return [
        Cookie(
            key=SESSION_COOKIE,
            value=issued.access_token,
            path="/",
            max_age=max(int((record.expire_datetime - now).total_seconds()), 0),
            httponly=True,
            samesite="lax",
            secure=secure,
        ),
        Cookie(
            key=REFRESH_COOKIE,
            value=issued.refresh_token,
            path=SESSION_PATH,
            max_age=max(int((refresh_expires - now).total_seconds()), 0),
            httponly=True,
            samesite="lax",
            secure=secure,
        ),
    ]


def _cleared_cookies() -> list[Cookie]:
    return [
        Cookie(key=SESSION_COOKIE, value="", path="/", max_age=0, httponly=True, samesite="lax"),
        Cookie(key=REFRESH_COOKIE, value="", path=SESSION_PATH, max_age=0, httponly=True, samesite="lax"),
    ]


class SessionController(Controller):
    path = "/"
    include_in_schema = False

    @get("/login", sync_to_thread=False, opt={"access": "public"})
    def login_form(self, request: Request[Any, Any, Any], next: FromQuery[str] = "/") -> Response[str]:
        return render_page(request, "login.html", title="Sign in", next=local_path(next), email="", error=None)

    @post("/login", sync_to_thread=True, opt={"access": "public"}, status_code=303)
    def login(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[SignInForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        check_same_origin(request)
        target = local_path(data.next)
        if len(data.email) > MAX_FORM_FIELD or len(data.password) > MAX_FORM_FIELD:
            return _login_failed(request, data, target, "The e-mail address or password is too long.", 400)
        # A sign-in over another session ends that session.
        _revoke_session(request)
        try:
            issued = sign_in(request, data.email, data.password)
        except NotAuthorizedException:
            return _login_failed(request, data, target, "Wrong e-mail address or password.", 401)
        except TooManyRequestsException as error:
            return _login_failed(request, data, target, str(error.detail), 429, error.headers)
        logger.info("web sign-in of user %s", issued.record.user_id)
        return Redirect(target, status_code=303, cookies=_session_cookies(request, issued))

    @post(LOGOUT_PATH, sync_to_thread=True, opt={"access": "public"}, status_code=303)
    def logout(self, request: Request[Any, Any, Any]) -> Response[Any]:
        check_same_origin(request)
        _revoke_session(request)
        return Redirect("/login", status_code=303, cookies=_cleared_cookies())

    @get(REFRESH_PATH, sync_to_thread=True, opt={"access": "public"})
    def refresh(self, request: Request[Any, Any, Any], next: FromQuery[str] = "/") -> Response[Any]:
        """Exchange the refresh cookie for a new session, then go back to `next`; without one, sign in."""
        target = local_path(next)
        refresh_token = request.cookies.get(REFRESH_COOKIE)
        if not refresh_token:
            return Redirect(sign_in_url(target), status_code=303, cookies=_cleared_cookies())
        renewals: Renewals = request.app.state.web_renewals
        try:
            issued = renewals.renew(request.app.state.tokens, refresh_token)
        except InvalidTokenError:
            return Redirect(sign_in_url(target), status_code=303, cookies=_cleared_cookies())
        return Redirect(target, status_code=303, cookies=_session_cookies(request, issued))


def _revoke_session(request: Request[Any, Any, Any]) -> None:
    """Revoke the token of the request's session: by its access cookie, or by its refresh cookie once that expired."""
    tokens: TokenService = request.app.state.tokens
    record = None
    access_token = request.cookies.get(SESSION_COOKIE)
    if access_token:
        try:
            _, record = tokens.verify_access(access_token)
        except InvalidTokenError:
            record = None
    refresh_token = request.cookies.get(REFRESH_COOKIE)
    if record is None and refresh_token:
        record = tokens.record_of_refresh(refresh_token)
    if record is None or record.revoked:
        return
    request.app.state.catalog.tokens.revoke(record.id)
    logger.info("web sign-out of user %s, token %s", record.user_id, record.id)


def _login_failed(
    request: Request[Any, Any, Any],
    data: SignInForm,
    target: str,
    message: str,
    status_code: int,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    response = render_page(
        request,
        "login.html",
        status_code=status_code,
        title="Sign in",
        next=target,
        email=data.email[:MAX_FORM_FIELD],
        error=message,
    )
    if headers:
        response.headers.update(headers)
    return response
