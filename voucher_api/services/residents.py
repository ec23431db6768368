"""Residents follow the registry (住民基本台帳): records are upserted from its change feed and the
system reacts — a death ends entitlements and card bindings, a move out of the city ends eligibility at
the end of that month, a licence return may make someone eligible (flagged for the counter).

The registry is outside the city's system: its records are validated at this boundary.
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import httpx
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from voucher_api.clock import japan_date
from voucher_api.models import (
    AuditEntry,
    BindingStatus,
    CardBinding,
    District,
    Entitlement,
    EntitlementStatus,
    Municipality,
    Resident,
    ResidentStatus,
)
from voucher_api.services import audit, eligibility

log = logging.getLogger(__name__)
ACTOR = "system:registry"
CHANGE_KINDS = ("moved_within", "moved_out", "moved_in", "died", "licence_returned", "name_changed")


class _Certificate(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["physical", "intellectual", "mental"]))
    grade = fields.String(required=True, validate=validate.Length(1, 3))


class RegistryPersonSchema(Schema):
    class Meta:
        unknown = "exclude"  # the registry may add fields; we take what we know

    registry_id = fields.String(required=True, validate=validate.Length(1, 32))
    municipality_code = fields.String(required=True, validate=validate.Regexp(r"^[0-9]{6}$"))
    household_id = fields.String(required=True, validate=validate.Length(1, 32))
    family_name = fields.String(required=True, validate=validate.Length(1, 50))
    given_name = fields.String(required=True, validate=validate.Length(1, 50))
    family_name_kana = fields.String(required=True, validate=validate.Length(1, 100))
    given_name_kana = fields.String(required=True, validate=validate.Length(1, 100))
    sex = fields.String(required=True, validate=validate.OneOf(["male", "female"]))
    birth_date = fields.Date(required=True)
    address = fields.String(required=True, validate=validate.Length(1, 200))
    district_code = fields.String(load_default=None, allow_none=True)
    car_licence = fields.String(required=True, validate=validate.OneOf(["none", "held", "returned"]))
    licence_returned_on = fields.Date(load_default=None, allow_none=True)
    disability_certificates = fields.List(fields.Nested(_Certificate), load_default=list)
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in ResidentStatus]))
    status_since = fields.Date(load_default=None, allow_none=True)


class RegistryChangeSchema(Schema):
    class Meta:
        unknown = "exclude"

    seq = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    kind = fields.String(required=True, validate=validate.OneOf(CHANGE_KINDS))
    registry_id = fields.String(required=True)
    effective_on = fields.Date(required=True)
    person = fields.Nested(RegistryPersonSchema, required=True)


class RegistryClient(Protocol):
    def changes_since(self, seq: int, limit: int) -> list[dict[str, Any]]: ...


class HttpRegistryClient:
    """The registry's change feed over HTTP (`GET {base}/changes?after=N&limit=M`)."""

    def __init__(self, base_url: str, http: httpx.Client | None = None) -> None:
        self._base = base_url.rstrip("/")
        self._http = http or httpx.Client(timeout=10)

    def changes_since(self, seq: int, limit: int) -> list[dict[str, Any]]:
        response = self._http.get(f"{self._base}/changes", params={"after": seq, "limit": limit})
        response.raise_for_status()
        body = response.json()
        items = body.get("changes") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise ValueError("the registry's /changes answer has no 'changes' list")
        return [item for item in items if isinstance(item, dict)]


def upsert_resident(
    session: Session, municipality: Municipality, person: dict[str, Any], now: datetime
) -> Resident:
    """Create or update the resident from a validated registry record."""
    district_id = None
    if person.get("district_code"):
        district_id = session.scalar(
            select(District.id).where(
                District.municipality_id == municipality.id, District.code == person["district_code"]
            )
        )
    values = {
        "household_id": person["household_id"],
        "family_name": person["family_name"],
        "given_name": person["given_name"],
        "family_name_kana": person["family_name_kana"],
        "given_name_kana": person["given_name_kana"],
        "sex": person["sex"],
        "birth_date": person["birth_date"],
        "address": person["address"],
        "district_id": district_id,
        "car_licence": person["car_licence"],
        "licence_returned_on": person["licence_returned_on"],
        "disability_certificates": [dict(c) for c in person["disability_certificates"]],
        "status": ResidentStatus(person["status"]),
        "status_since": person["status_since"],
        "synced_at": now,
    }
    resident = session.scalar(
        select(Resident).where(
            Resident.municipality_id == municipality.id, Resident.registry_id == person["registry_id"]
        )
    )
    if resident is None:
        resident = Resident(municipality_id=municipality.id, registry_id=person["registry_id"], **values)
        session.add(resident)
    else:
        for name, value in values.items():
            setattr(resident, name, value)
    session.flush()
    return resident


def last_applied_seq(session: Session, municipality_id: int) -> int:
    """The feed cursor: the newest change already applied (each one leaves an audit entry)."""
    entity_id = session.scalar(
        select(AuditEntry.entity_id)
        .where(AuditEntry.municipality_id == municipality_id, AuditEntry.action == "registry.change_applied")
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
    return int(entity_id) if entity_id is not None else 0


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


@dataclass(frozen=True)
class Applied:
    seq: int
    kind: str
    resident_id: int
    reactions: tuple[str, ...]


def apply_change(
    session: Session, municipality: Municipality, change: dict[str, Any], now: datetime
) -> Applied:
    """Apply one validated feed entry to the resident and react to it (see the module docstring)."""
    resident = upsert_resident(session, municipality, change["person"], now)
    reactions: list[str] = []
    kind, effective = change["kind"], change["effective_on"]
    live = [EntitlementStatus.ACTIVE, EntitlementStatus.SUSPENDED]
    if kind == "died":
        ended = (
            session.execute(
                update(Entitlement)
                .where(Entitlement.resident_id == resident.id, Entitlement.status.in_(live))
                .values(status=EntitlementStatus.ENDED, status_reason="死亡のため終了(住民記録)")
                .returning(Entitlement.id)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        bindings = (
            session.execute(
                update(CardBinding)
                .where(CardBinding.resident_id == resident.id, CardBinding.status == BindingStatus.ACTIVE)
                .values(status=BindingStatus.ENDED, ended_at=now, end_reason="死亡")
                .returning(CardBinding.id)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        reactions += [f"entitlement:{i}:ended" for i in ended] + [f"binding:{i}:ended" for i in bindings]
    elif kind == "moved_out":
        last_day = month_end(effective)
        cut = (
            session.execute(
                update(Entitlement)
                .where(
                    Entitlement.resident_id == resident.id,
                    Entitlement.status.in_(live),
                    Entitlement.valid_to > last_day,
                )
                .values(valid_to=last_day, status_reason=f"転出のため{last_day:%Y年%m月%d日}まで")
                .returning(Entitlement.id)
                .execution_options(synchronize_session=False)
            )
            .scalars()
            .all()
        )
        reactions += [f"entitlement:{i}:valid_to:{last_day.isoformat()}" for i in cut]
    elif kind == "licence_returned":
        held = set(
            session.scalars(select(Entitlement.program_id).where(Entitlement.resident_id == resident.id))
        )
        for decision in eligibility.decide_all(session, resident, today=japan_date(now)):
            if decision.eligible and decision.program.id not in held:
                reactions.append(f"may_be_eligible:{decision.program.code}")
    audit.record(
        session,
        at=now,
        actor=ACTOR,
        action="registry.change_applied",
        entity_type="registry_change",
        entity_id=change["seq"],
        municipality_id=municipality.id,
        details={
            "kind": kind,
            "resident_id": resident.id,
            "effective_on": effective.isoformat(),
            "reactions": reactions,
        },
    )
    if any(r.startswith("may_be_eligible") for r in reactions):
        audit.record(
            session,
            at=now,
            actor=ACTOR,
            action="resident.may_be_eligible",
            entity_type="resident",
            entity_id=resident.id,
            municipality_id=municipality.id,
            details={"programs": [r.split(":", 1)[1] for r in reactions]},
        )
    return Applied(change["seq"], kind, resident.id, tuple(reactions))


def follow_changes(
    session: Session, client: RegistryClient, *, municipality_code: str, now: datetime, limit: int = 500
) -> list[Applied]:
    """Apply the feed entries after the cursor, in order; entries of other cities are skipped.

    A malformed entry stops the run there (logged, nothing of it written) so it is never silently lost.
    Two followers of one city (two beats, or beat and `voucher-api sync-registry`) take turns: the city's
    row is locked until the caller commits, so the second reads the cursor the first moved and applies
    nothing twice (FOR NO KEY UPDATE, which rows referring to the city do not wait for).
    """
    municipality = session.scalar(
        select(Municipality).where(Municipality.code == municipality_code).with_for_update(key_share=True)
    )
    if municipality is None:
        raise ValueError(f"unknown municipality {municipality_code}")
    cursor = last_applied_seq(session, municipality.id)
    applied: list[Applied] = []
    for raw in client.changes_since(cursor, limit):
        try:
            change = RegistryChangeSchema().load(raw)
        except ValidationError as exc:
            log.error("registry change after seq %s is malformed: %s", cursor, exc.messages)
            break
        if change["seq"] <= cursor:
            continue
        if change["person"]["municipality_code"] != municipality_code:
            continue
        applied.append(apply_change(session, municipality, change, now))
        cursor = change["seq"]
    return applied
