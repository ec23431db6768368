from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from voucher_api.api.context import (
    _authenticate,
    clock,
    db,
    db_committing_each_statement,
    settings,
    staff_required,
    terminal_or_staff,
    terminal_required,
    verifier,
)
from voucher_api.api.idempotency import idempotency_key
from voucher_api.api.identity.routes import proof_from
from voucher_api.api.problems import language
from voucher_api.api.rides.schemas import (
    BoardRequestSchema,
    FareRequestSchema,
    ReviewItemSchema,
    RideSchema,
    VoidRequestSchema,
    ride_response,
)
from voucher_api.models import Driver, Operator, RecordStatus, Ride, Terminal, TerminalRecord
from voucher_api.services import identity, rides
from voucher_api.services.errors import Conflict, DomainError, NotFound, message_for

blp = Blueprint("rides", __name__, url_prefix="/rides", description="Boarding, fare at alighting, void")

# Instances, not classes: webargs builds a new schema (deep-copying its fields) per request from a class.
BOARD_REQUEST = BoardRequestSchema()
FARE_REQUEST = FareRequestSchema()


def next_challenge() -> identity.IssuedChallenge | None:
    """The terminal's next boarding challenge, handed over with every ride answer (costs no write)."""
    principal = _authenticate()
    if principal.kind != "terminal":
        return None
    return identity.issue_challenge(
        verifier().challenge_key,
        purpose="board",
        context=rides.board_context(principal.id),
        now=clock().now(),
        ttl=timedelta(seconds=settings().board_challenge_ttl_seconds),
    )


@blp.route("")
class Rides(MethodView):
    @terminal_required
    @blp.arguments(BOARD_REQUEST)
    @blp.response(201, RideSchema)
    @blp.alt_response(200, schema=RideSchema, description="a retry: the first ride, unchanged")
    @blp.doc(
        security=[{"bearer": []}], parameters=[{"in": "header", "name": "Idempotency-Key", "required": True}]
    )
    def post(self, body: dict[str, Any]) -> Any:
        """Board: prove the card, consume the entitlement, record the ride. Retries return the first ride."""
        terminal = _authenticate()
        key = idempotency_key(required=True)
        assert key is not None
        session = db_committing_each_statement()
        # A retry finds its challenge used or its key taken; both land below, where the first ride is
        # looked up and returned, so the happy path pays for no extra look-up.
        driver_id = None
        if body["driver_code"]:
            driver_id = session.scalar(
                select(Driver.id).where(
                    Driver.operator_id == terminal.operator_id, Driver.code == body["driver_code"]
                )
            )
            if driver_id is None:
                raise NotFound("not_found", field="driver_code")
        request = rides.BoardRequest(
            idempotency_key=key,
            sequence=body["sequence"],
            proof=proof_from(body["card"]),
            driver_id=driver_id,
            trip_ref=body["trip_ref"],
        )
        try:
            ride = rides.board(session, verifier(), terminal, request, clock().now())
            session.flush()
        except (IntegrityError, DomainError) as exc:
            # A concurrent retry with the same key may have won: answer with its ride.
            session.rollback()
            existing = rides.find_by_key(session, terminal_id=terminal.id, idempotency_key=key)
            if existing is not None:
                return ride_response(existing, next_challenge(), status=200)
            if isinstance(exc, IntegrityError):
                raise Conflict("ride.sequence_reused") from exc
            raise
        return ride_response(ride, next_challenge(), status=201)


@blp.route("/<int:ride_id>")
class RideById(MethodView):
    @terminal_or_staff("operator_admin", "counter", "finance", "auditor")
    @blp.response(200, RideSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, ride_id: int) -> Any:
        """One ride as the terminal shows it."""
        principal = _authenticate()
        owner = db().execute(select(Ride.municipality_id, Ride.operator_id).where(Ride.id == ride_id)).first()
        if (
            owner is None
            or owner.municipality_id != principal.municipality_id
            or (principal.kind == "terminal" and owner.operator_id != principal.operator_id)
        ):
            raise NotFound("ride.not_found")
        view = rides.view(db(), ride_id)
        return view.as_dict()


@blp.route("/<int:ride_id>/fare")
class Fare(MethodView):
    @terminal_required
    @blp.arguments(FARE_REQUEST)
    @blp.response(200, RideSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any], ride_id: int) -> Any:
        """Alighting: the meter fare; returns what the rider pays. The same fare again returns the same."""
        ride = rides.complete(
            db_committing_each_statement(),
            _authenticate(),
            ride_id=ride_id,
            meter_fare=body["meter_fare"],
            now=clock().now(),
        )
        return ride_response(ride, next_challenge(), status=200)


@blp.route("/<int:ride_id>/void")
class Void(MethodView):
    @terminal_or_staff("operator_admin")
    @blp.arguments(VoidRequestSchema)
    @blp.response(200, RideSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any], ride_id: int) -> Any:
        """Void a ride within the program's window (operator admins: before settlement)."""
        return rides.void(
            db(), _authenticate(), ride_id=ride_id, reason=body["reason"], now=clock().now()
        ).as_dict()


@blp.route("/under-review")
class UnderReview(MethodView):
    @staff_required("finance", "finance_approver", "auditor")
    @blp.response(200, ReviewItemSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self) -> Any:
        """Offline rides that the rules would have refused online, and records that could not be verified."""
        principal = _authenticate()
        lang = language()
        conflicts = (
            db()
            .scalars(
                select(Ride)
                .where(Ride.municipality_id == principal.municipality_id, Ride.review_code.is_not(None))
                .order_by(Ride.boarded_at)
            )
            .all()
        )
        items: list[dict[str, Any]] = [
            {
                "ride_id": r.id,
                "terminal_id": r.terminal_id,
                "sequence": r.terminal_sequence,
                "code": r.review_code,
                "title": message_for(r.review_code or "", lang),
                "boarded_at": r.boarded_at,
                "received_at": r.recorded_at,
                "meter_fare": r.meter_fare,
                "subsidy": r.subsidy_amount,
                "kind": "conflict",
            }
            for r in conflicts
        ]
        rejected = (
            db()
            .execute(
                select(TerminalRecord)
                .join(Terminal, Terminal.id == TerminalRecord.terminal_id)
                .join(Operator, Operator.id == Terminal.operator_id)
                .where(
                    Operator.municipality_id == principal.municipality_id,
                    TerminalRecord.status == RecordStatus.REJECTED,
                )
                .order_by(TerminalRecord.received_at)
            )
            .scalars()
            .all()
        )
        items += [
            {
                "ride_id": t.ride_id,
                "terminal_id": t.terminal_id,
                "sequence": t.sequence,
                "code": t.code,
                "title": message_for(t.code or "", lang),
                "boarded_at": t.recorded_at,
                "received_at": t.received_at,
                "meter_fare": None,
                "subsidy": None,
                "kind": "rejected",
            }
            for t in rejected
        ]
        return items
