"""The access rule on its own: roles from project permissions, and the decision per route rule."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.testing import TestClient

from api.access import MissingRuleError, check_route_rules, enforce_access_rule
from api.errors import EXCEPTION_HANDLERS
from api.policy import Decision, Policy
from catalog import ProjectRecord, UserRecord, user_id_for
from config import Permissions, Project

ADMIN_ID = user_id_for("admin@example.org")
NOW = datetime(2024, 1, 1)


def _user(email: str, is_admin: bool = False) -> UserRecord:
    return UserRecord(
        id=user_id_for(email),
        email=email,
        password_hash="not used",
        is_admin=is_admin,
        is_active=True,
        registration_date=NOW,
        last_login=None,
    )


def _project(permissions: Permissions | None = None, is_public: bool = False) -> ProjectRecord:
    project = Project(name="p", id="6a0009000000000000000001", is_public=is_public, permissions=permissions)
    return ProjectRecord(
        id="6a0009000000000000000001",
        name="p",
        source="config",
        project=project,
        registration_time=NOW,
        last_modified=NOW,
    )


def test_owner_by_email_manages() -> None:
    project = _project(Permissions(owners=["ada@example.org"]))

    decision = Policy(ADMIN_ID, public_read=False).decide(_user("ada@example.org"), "manage", project)

    assert decision is Decision.ALLOW


def test_member_by_user_document_reads() -> None:
    project = _project(Permissions(owners=["ada@example.org"], viewers=[{"email": "bob@example.org"}]))

    decision = Policy(ADMIN_ID, public_read=False).decide(_user("bob@example.org"), "read", project)

    assert decision is Decision.ALLOW


def test_project_without_owners_is_managed_by_admins_only() -> None:
    policy = Policy(ADMIN_ID, public_read=False)
    project = _project(Permissions(viewers=["bob@example.org"]))

    # An account that merely has the administrator address, without the admin flag, gets no role.
    assert policy.role(_user("admin@example.org", is_admin=False), project.project) is None
    assert policy.role(_user("admin@example.org", is_admin=True), project.project) == "admin"
    assert policy.role(_user("bob@example.org"), project.project) == "viewer"


def test_star_viewer_reads_but_cannot_write() -> None:
    policy = Policy(ADMIN_ID, public_read=True)
    project = _project(Permissions(owners=["ada@example.org"], viewers=["*"]))

    assert policy.decide(_user("eve@example.org"), "read", project) is Decision.ALLOW
    assert policy.decide(_user("eve@example.org"), "write", project) is Decision.DENY
    assert policy.decide(None, "read", project) is Decision.SIGN_IN


def test_highest_of_two_roles_counts() -> None:
    project = _project(
        Permissions(owners=["ada@example.org"], editors=["bob@example.org"], viewers=["bob@example.org"])
    )

    assert Policy(ADMIN_ID, public_read=False).role(_user("bob@example.org"), project.project) == "editor"


@pytest.mark.parametrize(
    ("public_read", "is_public", "expected"),
    [
        (False, True, Decision.SIGN_IN),
        (True, True, Decision.ALLOW),
        (True, False, Decision.SIGN_IN),
    ],
)
def test_anonymous_read(public_read: bool, is_public: bool, expected: Decision) -> None:
    project = _project(Permissions(owners=["ada@example.org"]), is_public=is_public)

    assert Policy(ADMIN_ID, public_read=public_read).decide(None, "read", project) is expected


def test_anonymous_missing_object_gets_sign_in() -> None:
    decision = Policy(ADMIN_ID, public_read=True).decide(None, "read", None, missing=True)

    assert decision is Decision.SIGN_IN


def test_public_project_is_not_writable_by_strangers() -> None:
    project = _project(Permissions(owners=["ada@example.org"]), is_public=True)

    assert Policy(ADMIN_ID, public_read=False).decide(_user("eve@example.org"), "write", project) is Decision.DENY


def test_admin_rule_denies_other_users() -> None:
    policy = Policy(ADMIN_ID, public_read=True)

    assert policy.decide(_user("eve@example.org"), "admin") is Decision.DENY
    assert policy.decide(_user("root@example.org", is_admin=True), "admin") is Decision.ALLOW
    assert policy.decide(None, "admin") is Decision.SIGN_IN


def test_readable_filters_list() -> None:
    private = _project(Permissions(owners=["ada@example.org"]))

    assert Policy(ADMIN_ID, public_read=False).readable(_user("eve@example.org"), [private]) == []


@get("/undeclared", sync_to_thread=False)
def _undeclared() -> dict[str, Any]:
    return {}


@get("/misspelt", sync_to_thread=False, opt={"access": "everyone"})
def _misspelt() -> dict[str, Any]:
    return {}


@get("/declared", sync_to_thread=False, opt={"access": "public"})
def _declared() -> dict[str, Any]:
    return {}


def test_route_without_rule_is_rejected() -> None:
    with pytest.raises(MissingRuleError, match="_undeclared"):
        check_route_rules(Litestar(route_handlers=[_undeclared, _declared], openapi_config=None))


def test_route_with_unknown_rule_is_rejected() -> None:
    with pytest.raises(MissingRuleError, match="'everyone'"):
        check_route_rules(Litestar(route_handlers=[_misspelt], openapi_config=None))


def test_declared_route_and_its_options_pass() -> None:
    check_route_rules(Litestar(route_handlers=[_declared], openapi_config=None))


def test_guard_rejects_route_without_rule() -> None:
    app = Litestar(
        route_handlers=[_undeclared],
        guards=[enforce_access_rule],
        exception_handlers=EXCEPTION_HANDLERS,
        state=State({"catalog": None, "policy": Policy(ADMIN_ID, public_read=True)}),
        openapi_config=None,
        logging_config=None,
    )

    with TestClient(app) as client:
        response = client.get("/undeclared")

    assert response.status_code == 500
    assert set(response.json()) == {"status_code", "detail"}
