from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate, validates_schema
from marshmallow.exceptions import ValidationError
from sqlalchemy import select

from voucher_api.api.common import Id, StrictSchema
from voucher_api.api.context import _authenticate, clock, current_principal, db, staff_required
from voucher_api.api.idempotency import idempotent
from voucher_api.clock import japan_date, japan_midnight
from voucher_api.models import District, MobileRound, MobileStop, Resident, StopStatus
from voucher_api.services import mobile_office
from voucher_api.services.errors import NotFound

blp = Blueprint(
    "mobile_office",
    __name__,
    url_prefix="/mobile-office",
    description="The mobile office: route of stops, opening and closing, the numbered queue, figures",
)

STAFF_ROLES = ("mobile_office", "counter")


class DistrictSchema(StrictSchema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()


class RoundRequestSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(1, 100))


class StopRequestSchema(StrictSchema):
    place = fields.String(required=True, validate=validate.Length(1, 100))
    district_id = Id(required=True)
    starts_at = fields.AwareDateTime(required=True)
    ends_at = fields.AwareDateTime(required=True)

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        if "starts_at" in data and "ends_at" in data and data["starts_at"] >= data["ends_at"]:
            raise ValidationError("ends_at must be after starts_at", field_name="ends_at")


class StopSchema(StrictSchema):
    id = fields.Integer()
    round_id = fields.Integer()
    position = fields.Integer()
    code = fields.String()
    place = fields.String()
    district_id = fields.Integer()
    district_name = fields.Method("_district_name")
    starts_at = fields.AwareDateTime()
    ends_at = fields.AwareDateTime()
    status = fields.Function(lambda s: s.status.value)
    opened_at = fields.AwareDateTime(allow_none=True)
    closed_at = fields.AwareDateTime(allow_none=True)

    def _district_name(self, stop: MobileStop) -> str:
        district = db().get(District, stop.district_id)
        return district.name if district is not None else ""


class RoundSchema(StrictSchema):
    id = fields.Integer()
    name = fields.String()
    created_at = fields.AwareDateTime()
    stops = fields.Method("_stops")

    def _stops(self, mobile_round: MobileRound) -> list[dict[str, Any]]:
        stops = db().scalars(
            select(MobileStop).where(MobileStop.round_id == mobile_round.id).order_by(MobileStop.position)
        )
        return StopSchema(many=True).dump(stops)  # type: ignore[no-any-return]


class StopQuerySchema(StrictSchema):
    on = fields.Date(metadata={"description": "stops whose window touches this day (Japan time)"})
    today = fields.Boolean(metadata={"description": "stops of the server's today (Japan time)"})
    status = fields.String(validate=validate.OneOf([s.value for s in StopStatus]))


class TicketSchema(StrictSchema):
    id = fields.Integer()
    stop_id = fields.Integer()
    number = fields.Integer()
    status = fields.Function(lambda t: t.status.value)
    resident_id = fields.Integer(allow_none=True)
    issued_at = fields.AwareDateTime()
    called_at = fields.AwareDateTime(allow_none=True)
    finished_at = fields.AwareDateTime(allow_none=True)


class CalledSchema(StrictSchema):
    ticket = fields.Nested(TicketSchema, allow_none=True)


class FinishRequestSchema(StrictSchema):
    outcome = fields.String(required=True, validate=validate.OneOf(["done", "skipped"]))
    resident_id = Id(load_default=None, allow_none=True)


class QueueSchema(StrictSchema):
    stop_id = fields.Integer()
    code = fields.String()
    place = fields.String()
    status = fields.String()
    waiting = fields.Integer()
    calling = fields.List(fields.Integer())
    last_issued = fields.Integer()
    minutes_per_person = fields.Float()
    estimated_wait_minutes = fields.Integer()


class FiguresSchema(StrictSchema):
    tickets = fields.Integer()
    served = fields.Integer()
    applications = fields.Integer()
    approved = fields.Integer()
    rejected = fields.Integer()
    residents = fields.Integer()
    service_minutes = fields.Float(allow_none=True)


class StopFiguresSchema(StrictSchema):
    stop_id = fields.Integer()
    code = fields.String()
    place = fields.String()
    district_code = fields.String()
    district_name = fields.String()
    status = fields.String()
    figures = fields.Nested(FiguresSchema)


class DistrictFiguresSchema(StrictSchema):
    district_code = fields.String()
    district_name = fields.String()
    figures = fields.Nested(FiguresSchema)


class RoundFiguresSchema(StrictSchema):
    round_id = fields.Integer()
    name = fields.String()
    stops = fields.List(fields.Nested(StopFiguresSchema))
    districts = fields.List(fields.Nested(DistrictFiguresSchema))
    total = fields.Nested(FiguresSchema)


def queue_body(view: mobile_office.QueueView) -> dict[str, Any]:
    return {
        "stop_id": view.stop.id,
        "code": view.stop.code,
        "place": view.stop.place,
        "status": view.stop.status.value,
        "waiting": view.waiting,
        "calling": view.calling,
        "last_issued": view.last_issued,
        "minutes_per_person": view.minutes_per_person,
        "estimated_wait_minutes": view.estimated_wait_minutes,
    }


@blp.route("/districts")
class Districts(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.response(200, DistrictSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self) -> Any:
        """The districts of the caller's city (the route is planned district by district)."""
        return db().scalars(
            select(District)
            .where(District.municipality_id == current_principal().municipality_id)
            .order_by(District.code)
        )


@blp.route("/rounds")
class Rounds(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.response(200, RoundSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self) -> Any:
        """The rounds of the caller's city, newest first, each with its stops in route order."""
        return db().scalars(
            select(MobileRound)
            .where(MobileRound.municipality_id == current_principal().municipality_id)
            .order_by(MobileRound.id.desc())
        )

    @staff_required(*STAFF_ROLES)
    @blp.arguments(RoundRequestSchema)
    @blp.response(201, RoundSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any]) -> Any:
        """Plan a new round; add its stops next."""
        principal = _authenticate()
        return mobile_office.create_round(
            db(),
            municipality_id=principal.municipality_id,
            name=body["name"],
            actor=principal.actor,
            now=clock().now(),
        )


@blp.route("/rounds/<int:round_id>")
class RoundById(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.response(200, RoundSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, round_id: int) -> Any:
        """One round with its stops."""
        return mobile_office.load_round(db(), round_id, current_principal().municipality_id)


@blp.route("/rounds/<int:round_id>/stops")
class RoundStops(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.arguments(StopRequestSchema)
    @blp.response(201, StopSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any], round_id: int) -> Any:
        """Add a stop (place, district, time window) at the end of the round's route."""
        principal = _authenticate()
        return mobile_office.add_stop(
            db(),
            round_id=round_id,
            municipality_id=principal.municipality_id,
            place=body["place"],
            district_id=body["district_id"],
            starts_at=body["starts_at"],
            ends_at=body["ends_at"],
            actor=principal.actor,
            now=clock().now(),
        )


@blp.route("/rounds/<int:round_id>/figures")
class RoundFigures(MethodView):
    @staff_required(*STAFF_ROLES, "auditor")
    @blp.response(200, RoundFiguresSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, round_id: int) -> Any:
        """Per-stop and per-district figures: numbers handed out, people served, applications."""
        result = mobile_office.round_figures(
            db(), round_id=round_id, municipality_id=current_principal().municipality_id
        )
        return {
            "round_id": result.mobile_round.id,
            "name": result.mobile_round.name,
            "stops": [
                {
                    "stop_id": row.stop.id,
                    "code": row.stop.code,
                    "place": row.stop.place,
                    "district_code": row.district_code,
                    "district_name": row.district_name,
                    "status": row.stop.status.value,
                    "figures": row.figures,
                }
                for row in result.stops
            ],
            "districts": [
                {"district_code": code, "district_name": name, "figures": figures}
                for code, name, figures in result.districts
            ],
            "total": result.total,
        }


@blp.route("/stops")
class Stops(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.arguments(StopQuerySchema, location="query")
    @blp.response(200, StopSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, query: dict[str, Any]) -> Any:
        """Stops of the caller's city, optionally those of one day (Japan time) or in one state."""
        stmt = select(MobileStop).where(MobileStop.municipality_id == current_principal().municipality_id)
        day: date | None = query.get("on")
        if day is None and query.get("today"):
            day = japan_date(clock().now())
        if day is not None:
            stmt = stmt.where(
                MobileStop.starts_at < japan_midnight(day + timedelta(days=1)),
                MobileStop.ends_at > japan_midnight(day),
            )
        if "status" in query:
            stmt = stmt.where(MobileStop.status == StopStatus(query["status"]))
        return db().scalars(stmt.order_by(MobileStop.starts_at, MobileStop.id).limit(200))


@blp.route("/stops/<int:stop_id>")
class StopById(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.response(200, StopSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, stop_id: int) -> Any:
        """One stop."""
        return mobile_office.load_stop(db(), stop_id, current_principal().municipality_id)


@blp.route("/stops/<int:stop_id>/open")
class OpenStop(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.response(200, StopSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, stop_id: int) -> Any:
        """Open the stop: numbers are handed out and applications are tagged with it."""
        principal = _authenticate()
        return mobile_office.open_stop(
            db(),
            stop_id=stop_id,
            municipality_id=principal.municipality_id,
            actor=principal.actor,
            now=clock().now(),
        )


@blp.route("/stops/<int:stop_id>/close")
class CloseStop(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.response(200, StopSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, stop_id: int) -> Any:
        """Close the stop: no more numbers; people already holding one are still served."""
        principal = _authenticate()
        return mobile_office.close_stop(
            db(),
            stop_id=stop_id,
            municipality_id=principal.municipality_id,
            actor=principal.actor,
            now=clock().now(),
        )


@blp.route("/stops/<int:stop_id>/tickets")
class Tickets(MethodView):
    @staff_required(*STAFF_ROLES)
    @idempotent()
    @blp.response(201, TicketSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, stop_id: int) -> Any:
        """Hand out the next number at an open stop (retry-safe with an Idempotency-Key)."""
        principal = _authenticate()
        return mobile_office.issue_ticket(
            db(),
            stop_id=stop_id,
            municipality_id=principal.municipality_id,
            actor=principal.actor,
            now=clock().now(),
        )


@blp.route("/stops/<int:stop_id>/call-next")
class CallNext(MethodView):
    @staff_required(*STAFF_ROLES)
    @idempotent()
    @blp.response(200, CalledSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, stop_id: int) -> Any:
        """Call the lowest waiting number to the desk; `ticket` is null when nobody waits."""
        principal = _authenticate()
        ticket = mobile_office.call_next(
            db(),
            stop_id=stop_id,
            municipality_id=principal.municipality_id,
            actor=principal.actor,
            now=clock().now(),
        )
        return {"ticket": ticket}


@blp.route("/stops/<int:stop_id>/queue")
class Queue(MethodView):
    @staff_required(*STAFF_ROLES)
    @blp.response(200, QueueSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, stop_id: int) -> Any:
        """The queue at the stop, for staff."""
        view = mobile_office.queue_view(
            db(), stop_id=stop_id, municipality_id=current_principal().municipality_id
        )
        return queue_body(view)


@blp.route("/stops/<int:stop_id>/display")
class Display(MethodView):
    @blp.response(200, QueueSchema)
    def get(self, stop_id: int) -> Any:
        """The queue as the residents' display shows it: numbers and the wait, no personal data.

        Public on purpose: the display in the vehicle has no staff sign-in.
        """
        return queue_body(mobile_office.queue_view(db(), stop_id=stop_id))


@blp.route("/tickets/<int:ticket_id>/finish")
class FinishTicket(MethodView):
    @staff_required(*STAFF_ROLES)
    @idempotent()
    @blp.arguments(FinishRequestSchema)
    @blp.response(200, TicketSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any], ticket_id: int) -> Any:
        """Mark a number served (with the resident) or skipped (did not answer the call)."""
        principal = _authenticate()
        resident_id = body["resident_id"]
        if resident_id is not None:
            resident = db().get(Resident, resident_id)
            if resident is None or resident.municipality_id != principal.municipality_id:
                raise NotFound("resident.not_found")
        return mobile_office.finish_ticket(
            db(),
            ticket_id=ticket_id,
            municipality_id=principal.municipality_id,
            actor=principal.actor,
            now=clock().now(),
            resident_id=resident_id,
            skipped=body["outcome"] == "skipped",
        )
