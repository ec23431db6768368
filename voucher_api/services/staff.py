"""Staff accounts and sign-in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from voucher_api.models import StaffRole, StaffUser
from voucher_api.services import audit
from voucher_api.services.errors import Unauthorized
from voucher_api.services.tokens import Principal

SYSTEM_ACTOR = "system"
# A hash to compare against when the user does not exist, so timing does not reveal usernames.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def create_staff(
    session: Session,
    *,
    municipality_id: int,
    username: str,
    display_name: str,
    password: str,
    roles: list[StaffRole],
    now: datetime,
    operator_id: int | None = None,
    actor: str = SYSTEM_ACTOR,
) -> StaffUser:
    """Create an active staff account with `roles` (the password is kept only as a hash).

    `actor` is who created it (staff:12 through the API, cli:<os user> for `voucher-api create-staff`);
    seeding code that acts for nobody may leave the default. The account's creation is audited with its
    username and roles, never the password. A username already taken raises IntegrityError at flush.
    """
    user = StaffUser(
        municipality_id=municipality_id,
        username=username,
        display_name=display_name,
        password_hash=generate_password_hash(password),
        roles=[r.value for r in roles],
        operator_id=operator_id,
        active=True,
        created_at=now,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="staff.created",
        entity_type="staff_user",
        entity_id=user.id,
        municipality_id=municipality_id,
        details={"username": username, "roles": list(user.roles), "operator_id": operator_id},
    )
    return user


def authenticate(session: Session, *, username: str, password: str) -> Principal:
    """Check a staff member's password; raises Unauthorized('auth.bad_credentials')."""
    user = session.scalar(select(StaffUser).where(StaffUser.username == username))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        raise Unauthorized("auth.bad_credentials")
    if not check_password_hash(user.password_hash, password) or not user.active:
        raise Unauthorized("auth.bad_credentials")
    return principal_for(user)


def principal_for(user: StaffUser) -> Principal:
    return Principal(
        kind="staff",
        id=user.id,
        municipality_id=user.municipality_id,
        roles=frozenset(user.roles),
        operator_id=user.operator_id,
        name=user.display_name,
    )
