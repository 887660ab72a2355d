"""Passwords, e-mail addresses, the token signing key and the first administrator.

api.tokens issues and verifies the tokens signed with the key kept here.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import sys

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from catalog import Catalog, ConflictError, UserRecord, user_id_for, utc_now
from config import Settings
from config.load_project import has_hidden_characters

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
# Longer passwords are rejected, so one request cannot make the service hash megabytes.
MAX_PASSWORD_LENGTH = 1024
# The length limit of an address in RFC 5321 (a 254-character path without the angle brackets).
MAX_EMAIL_LENGTH = 254
# One "@", no white space, and a dot in the domain: the checks that catch typing mistakes.
# Whether the address receives mail is not checked.
_EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_hasher = PasswordHasher()


class InvalidAccountError(ValueError):
    """Raised when an e-mail address or a new password does not meet the rules for accounts."""


def check_email(email: str) -> str:
    """Return `email` without surrounding white space; raise InvalidAccountError when it is not an address."""
    address = email.strip()
    if len(address) > MAX_EMAIL_LENGTH:
        raise InvalidAccountError(
            f"the e-mail address is {len(address)} characters long; the maximum is {MAX_EMAIL_LENGTH}"
        )
    if has_hidden_characters(address):
        raise InvalidAccountError(
            f"{address!r} contains control or invisible characters; type the e-mail address without them"
        )
    if not _EMAIL_PATTERN.fullmatch(address):
        raise InvalidAccountError(f"{address!r} is not a valid e-mail address; use the form name@example.org")
    return address


def check_new_password(password: str) -> None:
    """Raise InvalidAccountError when `password` is too short or too long to be set."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidAccountError(
            f"the password is {len(password)} characters long; use at least {MIN_PASSWORD_LENGTH}"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidAccountError(f"the password is {len(password)} characters long; use at most {MAX_PASSWORD_LENGTH}")


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


def ensure_admin(catalog: Catalog, settings: Settings, password: str | None = None) -> None:
    """Create the configured administrator when the catalog has no user yet.

    The password comes from `password`, else DEPICTIO_ADMIN_PASSWORD, else it is generated
    and printed once to standard error (never logged).
    """
    if catalog.users.count() > 0:
        if os.environ.get("DEPICTIO_ADMIN_PASSWORD") and catalog.users.get_by_email(settings.auth.admin_email) is None:
            logger.warning(
                "DEPICTIO_ADMIN_PASSWORD is ignored: the catalog already has users, and %s is created only in an "
                "empty catalog; add an administrator with `depictiod users add --admin EMAIL`",
                settings.auth.admin_email,
            )
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
    try:
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
    except ConflictError:
        # Another process of a shared (DuckLake) catalog created the administrator meanwhile.
        if catalog.users.get_by_email(email) is None:
            raise
        logger.info("administrator %s was created by another process of this catalog", email)
        return
    logger.info("created administrator %s", email)
    if generated:
        print(
            f"\nCreated administrator {email} with the generated password:\n\n    {chosen}\n\n"
            "It is shown only this once; set DEPICTIO_ADMIN_PASSWORD before the first start to choose it.\n",
            file=sys.stderr,
            flush=True,
        )
