"""Who may join which program: the predicates of each program plus the exclusions between programs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from voucher_api.clock import fiscal_year_start
from voucher_api.models import (
    District,
    Entitlement,
    EntitlementStatus,
    Program,
    ProgramExclusion,
    Resident,
    ResidentStatus,
)
from voucher_api.services.program_rules import PersonFacts, Reason, evaluate_predicate


@dataclass(frozen=True)
class Decision:
    program: Program
    eligible: bool
    reasons: list[Reason]


def person_facts(session: Session, resident: Resident) -> PersonFacts:
    district_code = None
    if resident.district_id is not None:
        district_code = session.scalar(select(District.code).where(District.id == resident.district_id))
    return PersonFacts(
        birth_date=resident.birth_date,
        car_licence=resident.car_licence,
        disability_certificates=tuple(
            (str(c["kind"]), str(c["grade"])) for c in resident.disability_certificates or []
        ),
        district_code=district_code,
    )


def decide(session: Session, resident: Resident, program: Program, *, today: date) -> Decision:
    """Evaluate every rule of `program` for `resident` on `today`.

    Refuses (eligible=False, with reasons) when the person is no longer a resident, the program is not
    running on `today`, any predicate fails, or the resident holds a live entitlement in an excluded program.
    """
    reasons: list[Reason] = []
    if resident.status is not ResidentStatus.RESIDENT:
        reasons.append(
            Reason("resident", False, "現在、市の住民として登録されていません", "Not a current resident")
        )
    in_period = program.valid_from <= today <= program.valid_to
    reasons.append(
        Reason(
            "period",
            in_period,
            f"受付期間 {program.valid_from:%Y年%m月%d日}〜{program.valid_to:%Y年%m月%d日}",
            f"Program runs {program.valid_from} to {program.valid_to}",
        )
    )
    names: dict[str, str] = {
        code: name
        for code, name in session.execute(
            select(District.code, District.name).where(District.municipality_id == program.municipality_id)
        ).all()
    }
    facts = person_facts(session, resident)
    start = fiscal_year_start(program.fiscal_year)
    for pred in program.eligibility:
        reasons.append(
            evaluate_predicate(pred, facts, fiscal_year_start=start, today=today, district_names=names)
        )

    excluded = (
        session.execute(
            select(Program.name)
            .join(ProgramExclusion, ProgramExclusion.excluded_program_id == Program.id)
            .join(Entitlement, Entitlement.program_id == Program.id)
            .where(
                ProgramExclusion.program_id == program.id,
                Entitlement.resident_id == resident.id,
                Entitlement.status.in_([EntitlementStatus.ACTIVE, EntitlementStatus.SUSPENDED]),
            )
        )
        .scalars()
        .all()
    )
    for name in excluded:
        reasons.append(
            Reason(
                "exclusion",
                False,
                f"「{name}」を利用中のため、この制度とは併用できません",
                f"Already in '{name}', which cannot be combined with this program",
            )
        )
    return Decision(program=program, eligible=all(r.met for r in reasons), reasons=reasons)


def decide_all(session: Session, resident: Resident, *, today: date) -> list[Decision]:
    """Decisions for every program of the resident's municipality that runs on `today`."""
    programs = session.scalars(
        select(Program)
        .where(
            Program.municipality_id == resident.municipality_id,
            Program.valid_from <= today,
            Program.valid_to >= today,
        )
        .order_by(Program.code)
    ).all()
    return [decide(session, resident, p, today=today) for p in programs]
