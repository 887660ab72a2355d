"""Users and the tokens issued to them."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

from catalog.errors import ConflictError, NotFoundError
from catalog.records import TokenRecord, UserRecord
from catalog.runs_files import utc_now
from catalog.store import Connection, Store
from config import derive_id

_USER_COLUMNS = "id, email, password_hash, is_admin, is_active, registration_date, last_login"
_TOKEN_COLUMNS = (
    "id, user_id, name, token_lifetime, jti, expire_datetime, created_at, revoked, "
    "refresh_jti, refresh_expire_datetime, access_seconds"
)


def email_key(email: str) -> str:
    """Return the form of an e-mail address that identifies its account.

    NFKC normalization and case folding make every spelling of one address equal, for
    example `İ` and `i` followed by a combining dot. Accounts are compared by this key in
    Python only, because DuckDB's lower() folds some letters differently.
    """
    return unicodedata.normalize("NFKC", email.strip()).casefold()


def user_id_for(email: str) -> str:
    """Return the stable id of the user with this e-mail address, in any spelling (see email_key)."""
    return derive_id("user", email_key(email))


def _user(row: tuple[Any, ...]) -> UserRecord:
    return UserRecord(**dict(zip(UserRecord.__struct_fields__, row, strict=True)))


def _token(row: tuple[Any, ...]) -> TokenRecord:
    return TokenRecord(**dict(zip(TokenRecord.__struct_fields__, row, strict=True)))


def _count(connection: Connection, sql: str, parameters: list[Any]) -> int:
    row = connection.execute(sql, parameters).fetchone()
    return int(row[0]) if row else 0


class UserRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def count(self) -> int:
        row = self._store.query_one("SELECT count(*) FROM users")
        return int(row[0]) if row else 0

    def add(self, user: UserRecord) -> None:
        """Insert a user; raise ConflictError when the e-mail address is taken (checked here, not by a constraint)."""

        if user.id != user_id_for(user.email):
            raise ValueError(f"user id {user.id!r} is not the id of {user.email!r}; give user_id_for(email)")

        def work(connection: Connection) -> None:
            if _count(connection, "SELECT count(*) FROM users WHERE id = ?", [user.id]):
                raise ConflictError(f"a user with e-mail {user.email!r} already exists")
            connection.execute(
                f"INSERT INTO users ({_USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    user.id,
                    user.email,
                    user.password_hash,
                    user.is_admin,
                    user.is_active,
                    user.registration_date,
                    user.last_login,
                ],
            )

        self._store.write(work)

    def get(self, user_id: str) -> UserRecord | None:
        row = self._store.query_one(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", [user_id])
        return _user(row) if row else None

    def get_by_email(self, email: str) -> UserRecord | None:
        row = self._store.query_one(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", [user_id_for(email)])
        return _user(row) if row else None

    def list(self) -> list[UserRecord]:
        rows = self._store.query(f"SELECT {_USER_COLUMNS} FROM users ORDER BY registration_date, email")
        return [_user(row) for row in rows]

    def record_login(self, user_id: str) -> None:
        self._store.write(lambda c: c.execute("UPDATE users SET last_login = ? WHERE id = ?", [utc_now(), user_id]))

    def set_password(self, user_id: str, password_hash: str, keep_token_id: str | None = None) -> int:
        """Store a new password hash and delete every token of the user but `keep_token_id`.

        Returns the number of tokens deleted. Raises NotFoundError for an unknown user.
        """

        def work(connection: Connection) -> int:
            if not _count(connection, "SELECT count(*) FROM users WHERE id = ?", [user_id]):
                raise NotFoundError("user", user_id)
            connection.execute("UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user_id])
            return _delete_tokens(connection, user_id, keep_token_id)

        return self._store.write(work)

    def set_admin(self, user_id: str, is_admin: bool) -> bool:
        """Grant or withdraw administrator rights; return False when the user had them already as asked.

        Raises NotFoundError for an unknown user and ConflictError when the change would
        leave the catalog without an active administrator.
        """

        def work(connection: Connection) -> bool:
            row = connection.execute("SELECT is_admin FROM users WHERE id = ?", [user_id]).fetchone()
            if row is None:
                raise NotFoundError("user", user_id)
            if bool(row[0]) == is_admin:
                return False
            if not is_admin:
                _check_other_admin(connection, user_id, "withdraw the administrator rights of")
            connection.execute("UPDATE users SET is_admin = ? WHERE id = ?", [is_admin, user_id])
            return True

        return self._store.write(work)

    def delete(self, user_id: str) -> int:
        """Delete a user and every token issued to them; return the number of tokens deleted.

        Raises NotFoundError for an unknown user and ConflictError for the last active
        administrator. The user's id stays in project permissions, where it no longer matches a user.
        """

        def work(connection: Connection) -> int:
            row = connection.execute("SELECT is_admin FROM users WHERE id = ?", [user_id]).fetchone()
            if row is None:
                raise NotFoundError("user", user_id)
            if row[0]:
                _check_other_admin(connection, user_id, "delete")
            deleted = _delete_tokens(connection, user_id, None)
            connection.execute("DELETE FROM users WHERE id = ?", [user_id])
            return deleted

        return self._store.write(work)


def _check_other_admin(connection: Connection, user_id: str, action: str) -> None:
    """Raise ConflictError unless an active administrator other than `user_id` exists."""
    others = _count(connection, "SELECT count(*) FROM users WHERE is_admin AND is_active AND id <> ?", [user_id])
    if not others:
        raise ConflictError(
            f"cannot {action} user {user_id!r}: it is the last administrator; make another user an administrator first"
        )


def _delete_tokens(connection: Connection, user_id: str, keep_token_id: str | None) -> int:
    row = connection.execute(
        "SELECT count(*) FROM tokens WHERE user_id = ? AND id IS DISTINCT FROM ?", [user_id, keep_token_id]
    ).fetchone()
    connection.execute("DELETE FROM tokens WHERE user_id = ? AND id IS DISTINCT FROM ?", [user_id, keep_token_id])
    return int(row[0]) if row else 0


class TokenRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, token: TokenRecord, unique_name: bool = False) -> None:
        """Insert a token; with `unique_name`, raise ConflictError when the user has a live long-lived token of that name."""

        def work(connection: Connection) -> None:
            if unique_name and _count(
                connection,
                "SELECT count(*) FROM tokens WHERE user_id = ? AND name = ? AND token_lifetime = 'long-lived' "
                "AND NOT revoked",
                [token.user_id, token.name],
            ):
                raise ConflictError(f"a token named {token.name!r} already exists; choose another name")
            connection.execute(
                f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    token.id,
                    token.user_id,
                    token.name,
                    token.token_lifetime,
                    token.jti,
                    token.expire_datetime,
                    token.created_at,
                    token.revoked,
                    token.refresh_jti,
                    token.refresh_expire_datetime,
                    token.access_seconds,
                ],
            )

        self._store.write(work)

    def get(self, token_id: str) -> TokenRecord | None:
        row = self._store.query_one(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE id = ?", [token_id])
        return _token(row) if row else None

    def get_by_jti(self, jti: str) -> TokenRecord | None:
        row = self._store.query_one(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE jti = ?", [jti])
        return _token(row) if row else None

    def list_for_user(self, user_id: str) -> list[TokenRecord]:
        rows = self._store.query(
            f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE user_id = ? ORDER BY created_at, name", [user_id]
        )
        return [_token(row) for row in rows]

    def rotate(self, rotated: TokenRecord, used_refresh_jti: str) -> bool:
        """Store the new `jti` values and expiry times of `rotated`, if `used_refresh_jti` is still its refresh token.

        The check and the update happen in one transaction, so of two refreshes with the
        same refresh token only one succeeds. Returns False for the other, and for a
        revoked or deleted token.
        """

        def work(connection: Connection) -> bool:
            row = connection.execute(
                "UPDATE tokens SET jti = ?, expire_datetime = ?, refresh_jti = ?, refresh_expire_datetime = ? "
                "WHERE id = ? AND refresh_jti = ? AND NOT revoked",
                [
                    rotated.jti,
                    rotated.expire_datetime,
                    rotated.refresh_jti,
                    rotated.refresh_expire_datetime,
                    rotated.id,
                    used_refresh_jti,
                ],
            ).fetchone()
            return bool(row and row[0])

        return self._store.write(work)

    def revoke(self, token_id: str) -> None:
        """Mark a token revoked; it stays stored until it expires, so a reuse is recognised."""
        self._store.write(lambda c: c.execute("UPDATE tokens SET revoked = true WHERE id = ?", [token_id]))

    def delete(self, token_id: str, user_id: str) -> bool:
        """Delete the token `token_id` of `user_id`; return False when that user has no such token."""

        def work(connection: Connection) -> bool:
            row = connection.execute("DELETE FROM tokens WHERE id = ? AND user_id = ?", [token_id, user_id]).fetchone()
            return bool(row and row[0])

        return self._store.write(work)

    def purge_expired(self, now: datetime) -> None:
        """Delete tokens whose access token and refresh token have both expired."""
        self._store.write(
            lambda c: c.execute(
                "DELETE FROM tokens WHERE greatest(expire_datetime, coalesce(refresh_expire_datetime, expire_datetime)) < ?",
                [now],
            )
        )
