"""Passwords, signing keys and access tokens.

Tokens are JWTs signed with an Ed25519 key (algorithm EdDSA) kept in the file named by
`auth.key_file`, created with mode 0600 on first start. Verification accepts EdDSA only,
requires `exp`, `iat`, `sub` and `jti`, and checks the `jti` against the catalog so a
deleted token or user stops working at once.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from datetime import UTC, datetime, timedelta

import jwt
import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from catalog import Catalog, TokenRecord, UserRecord, user_id_for, utc_now
from config import Settings, derive_id

logger = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
LEEWAY_SECONDS = 30
MIN_PASSWORD_LENGTH = 8
_hasher = PasswordHasher()


class InvalidTokenError(Exception):
    """Raised when a bearer token is malformed, expired, revoked or of an unknown user."""


class IssuedToken(msgspec.Struct, kw_only=True, frozen=True):
    record: TokenRecord
    access_token: str


def hash_password(password: str) -> str:
    """Return an argon2id hash of `password`."""
    return _hasher.hash(password)


# Verified against when the e-mail is unknown, so a failed sign-in takes the same time
# whether or not the account exists.
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_hex(16))


def verify_unknown_user(password: str) -> None:
    """Spend the time of one password check, for a sign-in with an unknown e-mail address."""
    verify_password(_UNKNOWN_USER_HASH, password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class KeyFileError(Exception):
    """Raised when the signing key file cannot be read or created."""


def load_or_create_key(path: str) -> Ed25519PrivateKey:
    """Read the signing key, creating it (mode 0600) when the file does not exist."""
    if os.path.exists(path):
        try:
            with open(path, "rb") as handle:
                key = serialization.load_pem_private_key(handle.read(), password=None)
        except (OSError, ValueError, TypeError) as error:
            raise KeyFileError(
                f"cannot read the key file {path!r}: {error}; move it away to let depictiod create a new one "
                "(tokens signed with the old key stop working)"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(
                f"the key file {path!r} does not hold an Ed25519 private key; move it away to let depictiod create one"
            )
        return key

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
    except OSError as error:
        raise KeyFileError(
            f"cannot create the key file {path!r}: {error.strerror}; set auth.key_file to a writable path"
        ) from None
    logger.info("created token signing key %s", path)
    return key


class TokenService:
    """Issues and verifies access tokens for the users of one catalog."""

    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        self._catalog = catalog
        self._private_key = load_or_create_key(settings.auth.key_file)
        self._public_key: Ed25519PublicKey = self._private_key.public_key()
        self._lifetime = timedelta(minutes=settings.auth.access_token_minutes)

    def issue(self, user: UserRecord, name: str, lifetime: str = "short-lived") -> IssuedToken:
        now = datetime.now(UTC).replace(microsecond=0)
        expires = now + self._lifetime
        jti = secrets.token_hex(16)
        record = TokenRecord(
            id=derive_id("token", jti),
            user_id=user.id,
            name=name,
            token_lifetime=lifetime,
            jti=jti,
            expire_datetime=expires.replace(tzinfo=None),
            created_at=now.replace(tzinfo=None),
            revoked=False,
        )
        claims = {"sub": user.id, "jti": jti, "iat": now, "exp": expires, "name": name}
        encoded = jwt.encode(claims, self._private_key, algorithm=ALGORITHM)
        self._catalog.tokens.add(record)
        return IssuedToken(record=record, access_token=encoded)

    def verify(self, token: str) -> UserRecord:
        """Return the user a valid token belongs to; raise InvalidTokenError otherwise."""
        try:
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=[ALGORITHM],
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "sub", "jti"]},
            )
        except jwt.PyJWTError as error:
            raise InvalidTokenError(f"invalid token: {error}") from None

        record = self._catalog.tokens.get_by_jti(str(claims["jti"]))
        if record is None or record.revoked or record.user_id != claims["sub"]:
            raise InvalidTokenError("invalid token: it was revoked or never issued here")
        user = self._catalog.users.get(str(claims["sub"]))
        if user is None or not user.is_active:
            raise InvalidTokenError("invalid token: its user no longer exists or is disabled")
        return user


def ensure_admin(catalog: Catalog, settings: Settings, password: str | None = None) -> None:
    """Create the configured administrator when the catalog has no user yet.

    The password comes from `password`, else DEPICTIO_ADMIN_PASSWORD, else it is generated
    and printed once to standard error (never logged).
    """
    if catalog.users.count() > 0:
        return
    chosen = password or os.environ.get("DEPICTIO_ADMIN_PASSWORD") or None
    generated = chosen is None
    if chosen is None:
        chosen = secrets.token_urlsafe(18)
    if len(chosen) < MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"the administrator password is {len(chosen)} characters long; use at least "
            f"{MIN_PASSWORD_LENGTH}, or unset DEPICTIO_ADMIN_PASSWORD to have one generated"
        )
    email = settings.auth.admin_email
    catalog.users.add(
        UserRecord(
            id=user_id_for(email),
            email=email,
            password_hash=hash_password(chosen),
            is_admin=True,
            is_active=True,
            registration_date=utc_now(),
            last_login=None,
        )
    )
    logger.info("created administrator %s", email)
    if generated:
        print(
            f"\nCreated administrator {email} with the generated password:\n\n    {chosen}\n\n"
            "It is shown only this once; set DEPICTIO_ADMIN_PASSWORD before the first start to choose it.\n",
            file=sys.stderr,
            flush=True,
        )
