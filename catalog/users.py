"""Users and the tokens issued to them."""

from __future__ import annotations

from datetime import datetime

from catalog.records import TokenRecord, UserRecord
from catalog.runs_files import utc_now
from catalog.store import Connection, Store
from config import derive_id

_USER_COLUMNS = "id, email, password_hash, is_admin, is_active, registration_date, last_login"
_TOKEN_COLUMNS = "id, user_id, name, token_lifetime, jti, expire_datetime, created_at, revoked"


def user_id_for(email: str) -> str:
    """Return the stable id of the user with this e-mail address (case-insensitive)."""
    return derive_id("user", email.strip().lower())


class UserRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def count(self) -> int:
        row = self._store.query_one("SELECT count(*) FROM users")
        return int(row[0]) if row else 0

    def add(self, user: UserRecord) -> None:
        """Insert a user; the e-mail address must not be taken (checked here, not by a constraint)."""

        def work(connection: Connection) -> None:
            existing = connection.execute(
                "SELECT count(*) FROM users WHERE lower(email) = lower(?)", [user.email]
            ).fetchone()
            if existing and existing[0]:
                raise ValueError(f"a user with e-mail {user.email!r} already exists")
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
        return UserRecord(**dict(zip(UserRecord.__struct_fields__, row, strict=True))) if row else None

    def get_by_email(self, email: str) -> UserRecord | None:
        row = self._store.query_one(f"SELECT {_USER_COLUMNS} FROM users WHERE lower(email) = lower(?)", [email])
        return UserRecord(**dict(zip(UserRecord.__struct_fields__, row, strict=True))) if row else None

    def record_login(self, user_id: str) -> None:
        self._store.write(lambda c: c.execute("UPDATE users SET last_login = ? WHERE id = ?", [utc_now(), user_id]))


class TokenRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def add(self, token: TokenRecord) -> None:
        self._store.write(
            lambda c: c.execute(
                f"INSERT INTO tokens ({_TOKEN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    token.id,
                    token.user_id,
                    token.name,
                    token.token_lifetime,
                    token.jti,
                    token.expire_datetime,
                    token.created_at,
                    token.revoked,
                ],
            )
        )

    def get_by_jti(self, jti: str) -> TokenRecord | None:
        row = self._store.query_one(f"SELECT {_TOKEN_COLUMNS} FROM tokens WHERE jti = ?", [jti])
        return TokenRecord(**dict(zip(TokenRecord.__struct_fields__, row, strict=True))) if row else None

    def purge_expired(self, now: datetime) -> None:
        self._store.write(lambda c: c.execute("DELETE FROM tokens WHERE expire_datetime < ?", [now]))
