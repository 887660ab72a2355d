"""`depictiod users`: manage the users of a catalog that no running service holds.

Passwords are read from a prompt on a terminal, or as one line from standard input
otherwise, never from the command line, where other users of the machine could see them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import TextIO

from api.security import InvalidAccountError, check_email, check_new_password, hash_password
from catalog import Catalog, UserRecord, user_id_for, utc_now
from config import Settings


class UsersCommandError(Exception):
    """Raised for a request that names no user, or a password that was typed differently twice."""


def run_users_command(arguments: argparse.Namespace, settings: Settings, stdin: TextIO = sys.stdin) -> int:
    """Run one `depictiod users` action; return the exit code."""
    # DuckDB allows one writing process per file, so opening fails while a service runs on it.
    catalog = Catalog(settings.catalog.path, settings.catalog)
    try:
        actions = {"add": _add, "list": _list, "set-admin": _set_admin, "reset-password": _reset_password}
        actions[arguments.action](arguments, catalog, stdin)
    except (InvalidAccountError, UsersCommandError) as error:
        print(f"depictiod: {error}", file=sys.stderr)
        return 1
    finally:
        catalog.close()
    return 0


def _add(arguments: argparse.Namespace, catalog: Catalog, stdin: TextIO) -> None:
    email = check_email(arguments.email)
    password = read_new_password(stdin)
    user = UserRecord(
        id=user_id_for(email),
        email=email,
        password_hash=hash_password(password),
        is_admin=arguments.admin,
        is_active=True,
        registration_date=utc_now(),
        last_login=None,
    )
    catalog.users.add(user)
    role = "administrator" if user.is_admin else "user"
    print(f"created {role} {email} with id {user.id}")


def _list(arguments: argparse.Namespace, catalog: Catalog, stdin: TextIO) -> None:
    print(f"{'id':<24}  {'email':<40} {'admin':<5} {'active':<6} last login")
    for user in catalog.users.list():
        last_login = user.last_login.strftime("%Y-%m-%d %H:%M:%S") if user.last_login else "never"
        admin = "yes" if user.is_admin else "no"
        active = "yes" if user.is_active else "no"
        print(f"{user.id:<24}  {user.email:<40} {admin:<5} {active:<6} {last_login}")


def _set_admin(arguments: argparse.Namespace, catalog: Catalog, stdin: TextIO) -> None:
    user = _find(catalog, arguments.email)
    requested = arguments.value == "true"
    changed = catalog.users.set_admin(user.id, requested)
    state = "an administrator" if requested else "not an administrator"
    print(f"{user.email} is now {state}" if changed else f"{user.email} was {state} already; nothing changed")


def _reset_password(arguments: argparse.Namespace, catalog: Catalog, stdin: TextIO) -> None:
    user = _find(catalog, arguments.email)
    password = read_new_password(stdin)
    revoked = catalog.users.set_password(user.id, hash_password(password))
    print(f"set a new password for {user.email}; revoked {revoked} tokens")


def _find(catalog: Catalog, email: str) -> UserRecord:
    user = catalog.users.get_by_email(email.strip())
    if user is None:
        raise UsersCommandError(f"no user has the e-mail address {email!r}; 'depictiod users list' shows them all")
    return user


def read_new_password(stdin: TextIO) -> str:
    """Read a new password twice from a terminal prompt, or once from standard input, and check its length."""
    if stdin.isatty():
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat the new password: ") != password:
            raise UsersCommandError("the two passwords differ; nothing was changed")
    else:
        password = stdin.readline().rstrip("\r\n")
    check_new_password(password)
    return password
