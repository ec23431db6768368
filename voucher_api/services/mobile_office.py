"""The mobile office (移動市役所): rounds of stops, opening and closing a stop, the numbered queue, and the
figures after a round.

Rules: the vehicle is at one place at a time, so only one stop of a round is open; a stop once closed
stays closed; numbers are handed out only while the stop is open and count up from 1 at each stop;
applications taken at a stop carry its code (`Application.mobile_stop`), which is how the figures find
them. The estimated wait is the number of people waiting times the average time a person took at this
stop (or in this round, or DEFAULT_MINUTES_PER_PERSON before anyone has been served).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from voucher_api.models import (
    Application,
    ApplicationStatus,
    District,
    MobileRound,
    MobileStop,
    QueueTicket,
    StopStatus,
    TicketStatus,
)
from voucher_api.services import audit
from voucher_api.services.errors import Conflict, NotFound, Refused

DEFAULT_MINUTES_PER_PERSON = 4


# --- rounds and stops ------------------------------------------------------------------------------


def create_round(
    session: Session, *, municipality_id: int, name: str, actor: str, now: datetime
) -> MobileRound:
    """Start planning a round (its stops are added one by one, in route order)."""
    mobile_round = MobileRound(municipality_id=municipality_id, name=name, created_by=actor, created_at=now)
    session.add(mobile_round)
    session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="mobile_round.created",
        entity_type="mobile_round",
        entity_id=mobile_round.id,
        municipality_id=municipality_id,
        details={"name": name},
    )
    return mobile_round


def load_round(session: Session, round_id: int, municipality_id: int) -> MobileRound:
    """The round, if it belongs to the caller's city; raises NotFound('round.not_found')."""
    mobile_round = session.get(MobileRound, round_id)
    if mobile_round is None or mobile_round.municipality_id != municipality_id:
        raise NotFound("round.not_found")
    return mobile_round


def load_stop(session: Session, stop_id: int, municipality_id: int | None) -> MobileStop:
    """The stop, if it belongs to the city (any city when None); raises NotFound('stop.not_found')."""
    stop = session.get(MobileStop, stop_id)
    if stop is None or (municipality_id is not None and stop.municipality_id != municipality_id):
        raise NotFound("stop.not_found")
    return stop


def add_stop(
    session: Session,
    *,
    round_id: int,
    municipality_id: int,
    place: str,
    district_id: int,
    starts_at: datetime,
    ends_at: datetime,
    actor: str,
    now: datetime,
) -> MobileStop:
    """Append a stop to the round's route; its code is R<round>-<position>.

    Raises NotFound('round.not_found'), Refused('stop.district_unknown') for a district of another city,
    Refused('stop.window_invalid') when the window does not end after it starts.
    """
    mobile_round = load_round(session, round_id, municipality_id)
    district = session.get(District, district_id)
    if district is None or district.municipality_id != municipality_id:
        raise Refused("stop.district_unknown")
    if starts_at >= ends_at:
        raise Refused("stop.window_invalid")
    last = session.scalar(select(func.max(MobileStop.position)).where(MobileStop.round_id == round_id))
    position = (last or 0) + 1
    stop = MobileStop(
        municipality_id=municipality_id,
        round_id=mobile_round.id,
        position=position,
        code=f"R{mobile_round.id}-{position:02d}",
        place=place,
        district_id=district.id,
        starts_at=starts_at,
        ends_at=ends_at,
        status=StopStatus.PLANNED,
    )
    session.add(stop)
    session.flush()
    audit.record(
        session,
        at=now,
        actor=actor,
        action="mobile_stop.planned",
        entity_type="mobile_stop",
        entity_id=stop.id,
        municipality_id=municipality_id,
        details={"code": stop.code, "place": place, "district": district.code},
    )
    return stop


def _lock_stop(session: Session, stop_id: int, municipality_id: int | None) -> MobileStop:
    """The stop row, locked for this transaction on PostgreSQL (SQLite serialises writers already)."""
    stop = session.scalar(
        select(MobileStop)
        .where(MobileStop.id == stop_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if stop is None or (municipality_id is not None and stop.municipality_id != municipality_id):
        raise NotFound("stop.not_found")
    return stop


def open_stop(
    session: Session, *, stop_id: int, municipality_id: int, actor: str, now: datetime
) -> MobileStop:
    """Open a planned stop for applications and numbers. Opening an open stop changes nothing.

    Raises Conflict('stop.closed') for a closed stop and Conflict('stop.other_open') while another stop
    of the same round is open (the vehicle is at one place at a time).
    """
    stop = _lock_stop(session, stop_id, municipality_id)
    if stop.status is StopStatus.OPEN:
        return stop
    if stop.status is StopStatus.CLOSED:
        raise Conflict("stop.closed")
    other = session.scalar(
        select(MobileStop.code).where(
            MobileStop.round_id == stop.round_id,
            MobileStop.status == StopStatus.OPEN,
            MobileStop.id != stop.id,
        )
    )
    if other is not None:
        raise Conflict("stop.other_open", other=other)
    stop.status = StopStatus.OPEN
    stop.opened_at = now
    session.flush()
    _audit_stop(session, stop, actor, now, "mobile_stop.opened")
    return stop


def close_stop(
    session: Session, *, stop_id: int, municipality_id: int, actor: str, now: datetime
) -> MobileStop:
    """Close an open stop: no more numbers are handed out; people already holding one are still served.

    Closing a closed stop changes nothing; raises Refused('stop.not_open') for a stop never opened.
    """
    stop = _lock_stop(session, stop_id, municipality_id)
    if stop.status is StopStatus.CLOSED:
        return stop
    if stop.status is not StopStatus.OPEN:
        raise Refused("stop.not_open")
    stop.status = StopStatus.CLOSED
    stop.closed_at = now
    session.flush()
    _audit_stop(session, stop, actor, now, "mobile_stop.closed")
    return stop


def _audit_stop(session: Session, stop: MobileStop, actor: str, now: datetime, action: str) -> None:
    audit.record(
        session,
        at=now,
        actor=actor,
        action=action,
        entity_type="mobile_stop",
        entity_id=stop.id,
        municipality_id=stop.municipality_id,
        details={"code": stop.code},
    )


# --- the queue -------------------------------------------------------------------------------------


def issue_ticket(
    session: Session, *, stop_id: int, municipality_id: int, actor: str, now: datetime
) -> QueueTicket:
    """Hand the next number at an open stop (1, 2, 3, … per stop); `actor` is who handed it out (the
    staff member at the desk, e.g. staff:12), recorded in the audit trail.

    Raises Refused('stop.not_open') before the stop opens and Conflict('stop.closed') after it closed.
    """
    stop = _lock_stop(session, stop_id, municipality_id)
    if stop.status is StopStatus.CLOSED:
        raise Conflict("stop.closed")
    if stop.status is not StopStatus.OPEN:
        raise Refused("stop.not_open")
    last = session.scalar(select(func.max(QueueTicket.number)).where(QueueTicket.stop_id == stop.id))
    ticket = QueueTicket(stop_id=stop.id, number=(last or 0) + 1, status=TicketStatus.WAITING, issued_at=now)
    session.add(ticket)
    session.flush()
    _audit_ticket(session, stop, ticket, actor, now, "queue_ticket.issued")
    return ticket


def _audit_ticket(
    session: Session,
    stop: MobileStop,
    ticket: QueueTicket,
    actor: str,
    now: datetime,
    action: str,
    **details: int | str | None,
) -> None:
    audit.record(
        session,
        at=now,
        actor=actor,
        action=action,
        entity_type="queue_ticket",
        entity_id=ticket.id,
        municipality_id=stop.municipality_id,
        details={"stop": stop.code, "number": ticket.number, **details},
    )


def call_next(
    session: Session, *, stop_id: int, municipality_id: int, actor: str, now: datetime
) -> QueueTicket | None:
    """Call the lowest waiting number to the desk; None when nobody is waiting.

    Works on a closed stop too, so everyone who got a number before closing is served.
    Raises Refused('stop.not_open') for a stop never opened.
    """
    stop = _lock_stop(session, stop_id, municipality_id)
    if stop.status is StopStatus.PLANNED:
        raise Refused("stop.not_open")
    ticket = session.scalar(
        select(QueueTicket)
        .where(QueueTicket.stop_id == stop.id, QueueTicket.status == TicketStatus.WAITING)
        .order_by(QueueTicket.number)
        .limit(1)
    )
    if ticket is None:
        return None
    ticket.status = TicketStatus.CALLED
    ticket.called_at = now
    ticket.called_by = actor
    session.flush()
    _audit_ticket(session, stop, ticket, actor, now, "queue_ticket.called")
    return ticket


def load_ticket(session: Session, ticket_id: int, municipality_id: int) -> QueueTicket:
    """The ticket, if its stop belongs to the city; raises NotFound('ticket.not_found')."""
    ticket = session.get(QueueTicket, ticket_id)
    if ticket is None:
        raise NotFound("ticket.not_found")
    stop = session.get(MobileStop, ticket.stop_id)
    if stop is None or stop.municipality_id != municipality_id:
        raise NotFound("ticket.not_found")
    return ticket


def finish_ticket(
    session: Session,
    *,
    ticket_id: int,
    municipality_id: int,
    actor: str,
    now: datetime,
    resident_id: int | None = None,
    skipped: bool = False,
) -> QueueTicket:
    """Mark a ticket done (served, optionally with the resident served) or skipped (did not answer);
    `actor` (the staff member) is recorded in the audit trail.

    Finishing it the same way again changes nothing (and records nothing); raises
    Conflict('ticket.finished') when it was already finished the other way.
    """
    ticket = load_ticket(session, ticket_id, municipality_id)
    wanted = TicketStatus.SKIPPED if skipped else TicketStatus.DONE
    if ticket.status is wanted:
        return ticket
    if ticket.status in (TicketStatus.DONE, TicketStatus.SKIPPED):
        raise Conflict("ticket.finished")
    if ticket.called_at is None:
        ticket.called_at = now
    ticket.status = wanted
    ticket.finished_at = now
    if resident_id is not None:
        ticket.resident_id = resident_id
    session.flush()
    stop = load_stop(session, ticket.stop_id, municipality_id)
    _audit_ticket(
        session,
        stop,
        ticket,
        actor,
        now,
        f"queue_ticket.{wanted.value}",
        resident_id=ticket.resident_id,
    )
    return ticket


@dataclass(frozen=True)
class QueueView:
    """What the display in the vehicle shows: no names, only numbers and the wait."""

    stop: MobileStop
    waiting: int
    calling: list[int]
    last_issued: int
    minutes_per_person: float
    estimated_wait_minutes: int


def _average_minutes(session: Session, *conditions: ColumnElement[bool]) -> float | None:
    rows = session.execute(
        select(QueueTicket.called_at, QueueTicket.finished_at)
        .join(MobileStop, MobileStop.id == QueueTicket.stop_id)
        .where(
            QueueTicket.status == TicketStatus.DONE,
            QueueTicket.called_at.is_not(None),
            QueueTicket.finished_at.is_not(None),
            *conditions,
        )
    ).all()
    spans = [(row.finished_at - row.called_at).total_seconds() / 60 for row in rows]
    return sum(spans) / len(spans) if spans else None


def queue_view(session: Session, *, stop_id: int, municipality_id: int | None = None) -> QueueView:
    """The queue at a stop: how many wait, which numbers are called, about how long a newcomer waits."""
    stop = load_stop(session, stop_id, municipality_id)
    counts = dict(
        session.execute(
            select(QueueTicket.status, func.count())
            .where(QueueTicket.stop_id == stop.id)
            .group_by(QueueTicket.status)
        ).all()
    )
    calling = list(
        session.scalars(
            select(QueueTicket.number)
            .where(QueueTicket.stop_id == stop.id, QueueTicket.status == TicketStatus.CALLED)
            .order_by(QueueTicket.number)
        )
    )
    last = session.scalar(select(func.max(QueueTicket.number)).where(QueueTicket.stop_id == stop.id)) or 0
    average = (
        _average_minutes(session, MobileStop.id == stop.id)
        or _average_minutes(session, MobileStop.round_id == stop.round_id)
        or float(DEFAULT_MINUTES_PER_PERSON)
    )
    waiting = int(counts.get(TicketStatus.WAITING, 0))
    return QueueView(
        stop=stop,
        waiting=waiting,
        calling=calling,
        last_issued=int(last),
        minutes_per_person=round(average, 1),
        estimated_wait_minutes=math.ceil(waiting * average),
    )


# --- figures after the round -----------------------------------------------------------------------


@dataclass
class Figures:
    """Counts for one stop, one district or the whole round."""

    tickets: int = 0
    served: int = 0
    applications: int = 0
    approved: int = 0
    rejected: int = 0
    residents: int = 0
    service_minutes: float | None = None

    def add(self, other: Figures) -> None:
        self.tickets += other.tickets
        self.served += other.served
        self.applications += other.applications
        self.approved += other.approved
        self.rejected += other.rejected
        self.residents += other.residents


@dataclass
class StopFigures:
    stop: MobileStop
    district_code: str
    district_name: str
    figures: Figures


@dataclass
class RoundFigures:
    mobile_round: MobileRound
    stops: list[StopFigures]
    districts: list[tuple[str, str, Figures]] = field(default_factory=list)
    total: Figures = field(default_factory=Figures)


def round_figures(session: Session, *, round_id: int, municipality_id: int) -> RoundFigures:
    """Per-stop and per-district figures of a round: numbers handed out, people served, applications
    (approved and rejected) and distinct residents who applied. Raises NotFound('round.not_found')."""
    mobile_round = load_round(session, round_id, municipality_id)
    stops = list(
        session.scalars(
            select(MobileStop).where(MobileStop.round_id == round_id).order_by(MobileStop.position)
        )
    )
    districts = {
        d.id: d for d in session.scalars(select(District).where(District.municipality_id == municipality_id))
    }
    codes = [s.code for s in stops]
    tickets: dict[int, dict[TicketStatus, int]] = defaultdict(dict)
    for stop_id, status, count in session.execute(
        select(QueueTicket.stop_id, QueueTicket.status, func.count())
        .where(QueueTicket.stop_id.in_([s.id for s in stops]))
        .group_by(QueueTicket.stop_id, QueueTicket.status)
    ):
        tickets[stop_id][status] = int(count)
    decided: dict[str, dict[ApplicationStatus, int]] = defaultdict(dict)
    for code, decision, count in session.execute(
        select(Application.mobile_stop, Application.status, func.count())
        .where(Application.municipality_id == municipality_id, Application.mobile_stop.in_(codes))
        .group_by(Application.mobile_stop, Application.status)
    ):
        decided[str(code)][decision] = int(count)
    people = dict(
        session.execute(
            select(Application.mobile_stop, func.count(func.distinct(Application.resident_id)))
            .where(Application.municipality_id == municipality_id, Application.mobile_stop.in_(codes))
            .group_by(Application.mobile_stop)
        ).all()
    )
    result = RoundFigures(mobile_round=mobile_round, stops=[])
    by_district: dict[int, Figures] = {}
    for stop in stops:
        counted = tickets.get(stop.id, {})
        apps = decided.get(stop.code, {})
        figures = Figures(
            tickets=sum(counted.values()),
            served=counted.get(TicketStatus.DONE, 0),
            applications=sum(apps.values()),
            approved=apps.get(ApplicationStatus.APPROVED, 0),
            rejected=apps.get(ApplicationStatus.REJECTED, 0),
            residents=int(people.get(stop.code, 0)),
            service_minutes=_rounded(_average_minutes(session, MobileStop.id == stop.id)),
        )
        district = districts[stop.district_id]
        result.stops.append(StopFigures(stop, district.code, district.name, figures))
        by_district.setdefault(district.id, Figures()).add(figures)
        result.total.add(figures)
    result.total.service_minutes = _rounded(_average_minutes(session, MobileStop.round_id == round_id))
    for district_id in sorted(by_district, key=lambda i: districts[i].code):
        district = districts[district_id]
        figures = by_district[district_id]
        figures.service_minutes = _rounded(
            _average_minutes(session, MobileStop.round_id == round_id, MobileStop.district_id == district_id)
        )
        result.districts.append((district.code, district.name, figures))
    return result


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
