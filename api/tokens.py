"""Access tokens and rotating refresh tokens, signed with the service's Ed25519 key.

Both are JWTs with the algorithm EdDSA. Verification accepts EdDSA only, requires `exp`,
`iat`, `sub` and `jti`, allows 30 s of clock skew, and then checks the token against its
catalog record, so a revoked or deleted token, or one whose user was deleted, fails at once.

A catalog record (TokenRecord) stands for one sign-in or one long-lived token. It stores
the `jti` of the current access token and of the current refresh token, never the tokens.
A refresh replaces both, so each refresh token works once. A refresh token presented again
after its use revokes the record, and with it every token refreshed from that sign-in.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from api.security import load_or_create_key
from catalog import Catalog, TokenRecord, UserRecord, utc_now
from config import Settings, derive_id

logger = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
LEEWAY_SECONDS = 30
_REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti"]
SHORT_LIVED = "short-lived"
LONG_LIVED = "long-lived"


class InvalidTokenError(Exception):
    """Raised when a token is malformed, expired, revoked, reused or of an unknown user.

    `expired` is True only when the token was valid apart from its expiry, so a client
    knows that a refresh or a new sign-in will help.
    """

    def __init__(self, message: str, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


class IssuedToken(msgspec.Struct, kw_only=True, frozen=True):
    """A token record with the two JWTs it stands for; the JWTs are returned once and never stored."""

    record: TokenRecord
    access_token: str
    refresh_token: str


class TokenService:
    """Issues, refreshes and verifies the tokens of the users of one catalog."""

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self._catalog = catalog
        self._private_key = load_or_create_key(settings.auth.key_file)
        self._public_key: Ed25519PublicKey = self._private_key.public_key()
        self._access_lifetime = timedelta(minutes=settings.auth.access_token_minutes)
        self._refresh_lifetime = timedelta(days=settings.auth.refresh_token_days)
        self.max_long_lived_days = settings.auth.long_lived_token_max_days

    def issue_session(self, user: UserRecord) -> IssuedToken:
        """Issue the short-lived token pair of a sign-in."""
        name = f"{user.email}_{datetime.now(UTC):%Y%m%d%H%M%S}"
        return self._issue(user, name, SHORT_LIVED, self._access_lifetime)

    def issue_long_lived(self, user: UserRecord, name: str, days: int) -> IssuedToken:
        """Issue a named long-lived token pair; raise catalog.ConflictError when the user has one of that name."""
        if not 1 <= days <= self.max_long_lived_days:
            raise ValueError(f"a long-lived token lives 1 to {self.max_long_lived_days} days, not {days}")
        return self._issue(user, name, LONG_LIVED, timedelta(days=days), unique_name=True)

    def _issue(
        self, user: UserRecord, name: str, lifetime: str, access: timedelta, unique_name: bool = False
    ) -> IssuedToken:
        now = _now()
        jti = secrets.token_hex(16)
        record = TokenRecord(
            id=derive_id("token", jti),
            user_id=user.id,
            name=name,
            token_lifetime=lifetime,
            jti=jti,
            expire_datetime=_naive(now + access),
            created_at=_naive(now),
            revoked=False,
            refresh_jti=secrets.token_hex(16),
            # A refresh token stays usable for refresh_token_days after its access token expires.
            refresh_expire_datetime=_naive(now + access + self._refresh_lifetime),
            access_seconds=int(access.total_seconds()),
        )
        self._catalog.tokens.add(record, unique_name=unique_name)
        logger.info("issued %s token %s to user %s", lifetime, record.id, user.id)
        return self._encode(record, now)

    def _encode(self, record: TokenRecord, now: datetime) -> IssuedToken:
        access = {
            "sub": record.user_id,
            "jti": record.jti,
            "iat": now,
            "exp": record.expire_datetime.replace(tzinfo=UTC),
            "name": record.name,
            "type": "access",
        }
        refresh = {
            "sub": record.user_id,
            "jti": record.refresh_jti,
            "iat": now,
            "exp": _aware(record.refresh_expire_datetime),
            # The record id finds the record even after this refresh token was used and replaced.
            "tid": record.id,
            "type": "refresh",
        }
        return IssuedToken(
            record=record,
            access_token=jwt.encode(access, self._private_key, algorithm=ALGORITHM),
            refresh_token=jwt.encode(refresh, self._private_key, algorithm=ALGORITHM),
        )

    def refresh(self, refresh_token: str) -> IssuedToken:
        """Return a new token pair for a refresh token and invalidate that refresh token and its access token.

        Raises InvalidTokenError for an invalid or expired refresh token, and for one that
        was used already; in that last case the whole record is revoked.
        """
        claims = self._decode(refresh_token, "refresh")
        record = self._catalog.tokens.get(str(claims.get("tid")))
        if record is None or record.user_id != claims["sub"]:
            raise InvalidTokenError("invalid refresh token: it was revoked or never issued here")
        if record.revoked:
            raise InvalidTokenError("invalid refresh token: it was revoked")
        if record.refresh_jti != claims["jti"]:
            self._revoke_reused(record)
        self._active_user(record.user_id)

        now = _now()
        access = timedelta(seconds=record.access_seconds or self._access_lifetime.total_seconds())
        rotated = msgspec.structs.replace(
            record,
            jti=secrets.token_hex(16),
            expire_datetime=_naive(now + access),
            refresh_jti=secrets.token_hex(16),
            refresh_expire_datetime=_naive(now + access + self._refresh_lifetime),
        )
        if not self._catalog.tokens.rotate(rotated, str(claims["jti"])):
            # Another request refreshed with the same refresh token first.
            self._revoke_reused(record)
        logger.info("refreshed token %s of user %s", record.id, record.user_id)
        return self._encode(rotated, now)

    def _revoke_reused(self, record: TokenRecord) -> None:
        self._catalog.tokens.revoke(record.id)
        logger.warning(
            "a used refresh token of token %s (user %s) was presented again; revoked the token and every token "
            "refreshed from it",
            record.id,
            record.user_id,
        )
        raise InvalidTokenError(
            "invalid refresh token: it was used already, so every token refreshed from it is revoked; sign in again"
        )

    def verify(self, token: str) -> UserRecord:
        """Return the user a valid access token belongs to; raise InvalidTokenError otherwise."""
        return self.verify_access(token)[0]

    def verify_access(self, token: str) -> tuple[UserRecord, TokenRecord]:
        """Return the user and the catalog record of a valid access token; raise InvalidTokenError otherwise."""
        claims = self._decode(token, "access")
        record = self._catalog.tokens.get_by_jti(str(claims["jti"]))
        if record is None or record.user_id != claims["sub"]:
            raise InvalidTokenError("invalid token: it was revoked, replaced by a refresh or never issued here")
        if record.revoked:
            raise InvalidTokenError("invalid token: it was revoked")
        if record.expire_datetime + timedelta(seconds=LEEWAY_SECONDS) < utc_now():
            raise InvalidTokenError("access token expired: refresh it or sign in again", expired=True)
        return self._active_user(record.user_id), record

    def check_validity(self, token: str) -> tuple[bool, bool]:
        """Return whether an access token is valid, and whether its refresh token still works."""
        try:
            _, record = self.verify_access(token)
        except InvalidTokenError as error:
            if not error.expired:
                return False, False
            record_or_none = self._expired_record(token)
            return False, record_or_none is not None and _refreshable(record_or_none)
        return True, _refreshable(record)

    def _expired_record(self, token: str) -> TokenRecord | None:
        """Return the live record of an access token that is valid except for its expiry."""
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=[ALGORITHM],
                leeway=LEEWAY_SECONDS,
                options={"require": _REQUIRED_CLAIMS, "verify_exp": False},
            )
        except jwt.PyJWTError:
            return None
        record = self._catalog.tokens.get_by_jti(str(claims["jti"]))
        if record is None or record.revoked or record.user_id != claims["sub"]:
            return None
        user = self._catalog.users.get(record.user_id)
        return record if user is not None and user.is_active else None

    def record_of_refresh(self, refresh_token: str) -> TokenRecord | None:
        """Return the record that a validly signed refresh token belongs to, used or not; None for any other token."""
        try:
            claims = self._decode(refresh_token, "refresh")
        except InvalidTokenError:
            return None
        record = self._catalog.tokens.get(str(claims.get("tid")))
        if record is None or record.user_id != claims["sub"]:
            return None
        return record

    def refresh_token_matches(self, refresh_token: str, record: TokenRecord) -> bool:
        """Return True when `refresh_token` is the current, valid refresh token of `record`."""
        try:
            claims = self._decode(refresh_token, "refresh")
        except InvalidTokenError:
            return False
        return claims.get("tid") == record.id and claims["jti"] == record.refresh_jti

    def _decode(self, token: str, expected_type: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public_key,
                algorithms=[ALGORITHM],
                leeway=LEEWAY_SECONDS,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            advice = "refresh it or sign in again" if expected_type == "access" else "sign in again"
            raise InvalidTokenError(f"{expected_type} token expired: {advice}", expired=True) from None
        except jwt.PyJWTError as error:
            raise InvalidTokenError(f"invalid {expected_type} token: {error}") from None

        # Access tokens issued before refresh tokens existed carry no type claim.
        found_type = claims.get("type", "access")
        if found_type != expected_type:
            raise InvalidTokenError(f"invalid token: expected a token of type {expected_type!r}, got {found_type!r}")
        return claims

    def _active_user(self, user_id: str) -> UserRecord:
        user = self._catalog.users.get(user_id)
        if user is None or not user.is_active:
            raise InvalidTokenError("invalid token: its user no longer exists or is disabled")
        return user


def _refreshable(record: TokenRecord) -> bool:
    expiry = record.refresh_expire_datetime
    return record.refresh_jti is not None and expiry is not None and expiry > utc_now()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _naive(moment: datetime) -> datetime:
    """Return a UTC time without its zone, as the catalog stores times."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def _aware(moment: datetime | None) -> datetime:
    assert moment is not None, "a token record issued here always has a refresh expiry"
    return moment.replace(tzinfo=UTC)
