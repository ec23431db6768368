"""Settlement runs and statements: start a month's close, follow it, read, export and sign off statements.

Staff see only their own municipality; an operator admin sees only their own operator's statements.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any, cast

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from settlement import disputes, documents, service
from settlement.exports import calendar, csv_export, zengin
from settlement.statements import format_period, parse_period
from voucher_api.api.context import clock, current_principal, db, staff_required
from voucher_api.api.idempotency import idempotency_key, idempotent
from voucher_api.api.settlement.schemas import (
    AcknowledgeRequestSchema,
    DisputeRequestSchema,
    LinePageQuerySchema,
    MonthQuerySchema,
    PaymentFileQuerySchema,
    RunQuerySchema,
    RunRequestSchema,
    RunSchema,
    StatementAdjustmentRequestSchema,
    StatementAdjustmentResultSchema,
    StatementAdjustmentSchema,
    StatementDetailSchema,
    StatementQuerySchema,
    StatementSchema,
)
from voucher_api.models import (
    Operator,
    SettlementRun,
    Statement,
    StatementAdjustment,
    StatementLine,
    StatementStatus,
)
from voucher_api.services import audit, reports
from voucher_api.services.errors import DomainError, Forbidden, NotFound, Refused
from voucher_api.services.tokens import Principal
from voucher_api.tasks_client import TaskSender

log = logging.getLogger(__name__)

blp = Blueprint("settlement", __name__, url_prefix="", description="Monthly settlement: runs and statements")

CLOSE_PERIOD_TASK = "settlement.close_period"
FINANCE_ROLES = ("finance", "finance_approver")
READ_ROLES = ("finance", "finance_approver", "auditor", "operator_admin")


def _tasks() -> TaskSender:
    return cast(TaskSender, current_app.extensions["voucher"]["tasks"])


def run_body(run: SettlementRun) -> dict[str, Any]:
    """A run as RunSchema shows it."""
    return {
        "run_id": run.id,
        "period": format_period(run.period),
        "status": run.status.value,
        "trigger": run.trigger,
        "requested_by": run.requested_by,
        "operators_total": run.operators_total,
        "operators_done": run.operators_done,
        "error": run.error,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


def statement_body(statement: Statement, operator: Operator) -> dict[str, Any]:
    """A statement (without lines) as StatementSchema shows it."""
    return {
        "statement_id": statement.id,
        "number": statement.number,
        "period": format_period(statement.period),
        "status": statement.status.value,
        "operator_id": operator.id,
        "operator_code": operator.code,
        "operator_name": operator.name,
        "run_id": statement.run_id,
        "ride_count": statement.ride_count,
        "fare_total": statement.fare_total,
        "rider_share_total": statement.rider_share_total,
        "subsidy_total": statement.subsidy_total,
        "adjustment_total": statement.adjustment_total,
        "amount_due": statement.amount_due,
        "generated_at": statement.generated_at,
        "confirmed_by_id": statement.confirmed_by_id,
        "confirmed_at": statement.confirmed_at,
        "approved_by_id": statement.approved_by_id,
        "approved_at": statement.approved_at,
        "paid_at": statement.paid_at,
        "paid_by_id": statement.paid_by_id,
        "operator_response": statement.operator_response.value,
        "operator_response_by_id": statement.operator_response_by_id,
        "operator_response_at": statement.operator_response_at,
        "dispute_reason": statement.dispute_reason,
        "dispute_answered": statement.dispute_answered_at is not None,
    }


def _operator_only(principal: Principal) -> int | None:
    """The operator an operator admin is limited to; None for city staff who see every operator."""
    if principal.roles & {"finance", "finance_approver", "auditor", "admin"}:
        return None
    return principal.operator_id if principal.operator_id is not None else -1


def _statements_query(principal: Principal) -> Select[Statement, Operator]:
    query = (
        select(Statement, Operator)
        .join(Operator, Operator.id == Statement.operator_id)
        .where(Statement.municipality_id == principal.municipality_id)
    )
    limited_to = _operator_only(principal)
    if limited_to is not None:
        query = query.where(Statement.operator_id == limited_to)
    return query


def _load_statement(statement_id: int) -> tuple[Statement, Operator]:
    row = db().execute(_statements_query(current_principal()).where(Statement.id == statement_id)).first()
    if row is None:
        raise NotFound("statement.not_found")
    return row[0], row[1]


def _load_run(run_id: int) -> SettlementRun:
    run = db().get(SettlementRun, run_id)
    if run is None or run.municipality_id != current_principal().municipality_id:
        raise NotFound("not_found")
    return run


@blp.route("/settlement-runs")
class SettlementRuns(MethodView):
    @staff_required(*FINANCE_ROLES)
    @idempotent()
    @blp.arguments(RunRequestSchema)
    @blp.response(202, RunSchema)
    @blp.doc(
        security=[{"bearer": []}],
        parameters=[{"in": "header", "name": "Idempotency-Key", "required": False}],
    )
    def post(self, body: dict[str, Any]) -> Any:
        """Start closing a month: one statement per operator, built by the worker. Follow the run by its id.

        Refused while the month has not ended (settlement.period_open) and while a run of the month is
        in progress (settlement.already_running).
        """
        principal = current_principal()
        session = db()
        run = service.start_run(
            session,
            municipality_id=principal.municipality_id,
            period=parse_period(body["period"]),
            trigger="api",
            requested_by=principal.actor,
            now=clock().now(),
        )
        # The worker must see the run, so it is committed before the task is sent.
        session.commit()
        try:
            _tasks().send(CLOSE_PERIOD_TASK, args=[str(run.id)])
        except Exception as exc:  # any broker failure: the run must not hold the period's lock
            log.exception("could not send %s for run %s", CLOSE_PERIOD_TASK, run.id)
            service.fail_run(session, run_id=run.id, error=service.NOT_SENT, now=clock().now())
            session.commit()
            raise DomainError("unavailable", status=503) from exc
        return run_body(run)

    @staff_required(*FINANCE_ROLES, "auditor")
    @blp.arguments(RunQuerySchema, location="query")
    @blp.response(200, RunSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, query: dict[str, Any]) -> Any:
        """The city's settlement runs, newest first (optionally of one month)."""
        principal = current_principal()
        stmt = select(SettlementRun).where(SettlementRun.municipality_id == principal.municipality_id)
        if query["period"]:
            stmt = stmt.where(SettlementRun.period == parse_period(query["period"]))
        runs = db().scalars(
            stmt.order_by(SettlementRun.created_at.desc(), SettlementRun.id.desc()).limit(200)
        )
        return [run_body(run) for run in runs]


@blp.route("/settlement-runs/<int:run_id>")
class SettlementRunById(MethodView):
    @staff_required(*FINANCE_ROLES, "auditor")
    @blp.response(200, RunSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, run_id: int) -> Any:
        """One run with its progress (operators_done of operators_total), and where it stands per operator."""
        run = _load_run(run_id)
        body = run_body(run)
        body["operators"] = [asdict(row) for row in reports.run_progress(db(), run)]
        return body


@blp.route("/statements")
class Statements(MethodView):
    @staff_required(*READ_ROLES)
    @blp.arguments(StatementQuerySchema, location="query")
    @blp.response(200, StatementSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, query: dict[str, Any]) -> Any:
        """Statements (without lines), by month then operator code."""
        stmt = _statements_query(current_principal())
        if query["period"]:
            stmt = stmt.where(Statement.period == parse_period(query["period"]))
        if query["operator_id"]:
            stmt = stmt.where(Statement.operator_id == query["operator_id"])
        if query["status"]:
            stmt = stmt.where(Statement.status == StatementStatus(query["status"]))
        rows = db().execute(stmt.order_by(Statement.period.desc(), Operator.code).limit(1000))
        return [statement_body(statement, operator) for statement, operator in rows]


@blp.route("/statements/<int:statement_id>")
class StatementById(MethodView):
    @staff_required(*READ_ROLES)
    @blp.arguments(LinePageQuerySchema, location="query")
    @blp.response(200, StatementDetailSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, page: dict[str, Any], statement_id: int) -> Any:
        """One statement with a page of its lines (`limit` lines from `offset`, by line number).

        `lines_total` is the statement's number of lines; a statement can hold hundreds of thousands.
        """
        statement, operator = _load_statement(statement_id)
        session = db()
        lines = session.scalars(
            select(StatementLine)
            .where(StatementLine.statement_id == statement.id)
            .order_by(StatementLine.line_no)
            .limit(page["limit"])
            .offset(page["offset"])
        )
        body = statement_body(statement, operator)
        signed = documents.sign_off_names(session, statement)
        body["confirmed_by_name"], body["approved_by_name"], body["paid_by_name"] = (
            signed.confirmed_by,
            signed.approved_by,
            signed.paid_by,
        )
        body["lines_total"] = session.scalar(
            select(func.count()).select_from(StatementLine).where(StatementLine.statement_id == statement.id)
        )
        body["lines_offset"], body["lines_limit"] = page["offset"], page["limit"]
        body["lines"] = [
            {
                "line_no": line.line_no,
                "kind": line.kind.value,
                "ride_id": line.ride_id,
                "boarded_at": line.boarded_at,
                "program_id": line.program_id,
                "vehicle_id": line.vehicle_id,
                "meter_fare": line.meter_fare,
                "rider_share": line.rider_share,
                "subsidy_amount": line.subsidy_amount,
                "note": line.note,
            }
            for line in lines
        ]
        return body


@blp.route("/statements/<int:statement_id>/csv")
class StatementCsv(MethodView):
    @staff_required(*READ_ROLES)
    @blp.doc(
        security=[{"bearer": []}],
        responses={"200": {"description": "UTF-8 CSV with BOM", "content": {"text/csv": {}}}},
    )
    def get(self, statement_id: int) -> Any:
        """The statement as CSV for Excel (UTF-8 with BOM): its lines, then its totals."""
        statement, _operator = _load_statement(statement_id)
        statement_id = statement.id
        return _streamed(
            lambda session: documents.statement_csv_chunks(session, statement_id),
            "text/csv; charset=utf-8",
            f"statement-{statement.number}.csv",
        )


@blp.route("/statements/<int:statement_id>/pdf")
class StatementPdf(MethodView):
    @staff_required(*READ_ROLES)
    @blp.doc(
        security=[{"bearer": []}],
        responses={"200": {"description": "A4 statement in Japanese", "content": {"application/pdf": {}}}},
    )
    def get(self, statement_id: int) -> Any:
        """The statement (精算書) as a PDF in Japanese."""
        from settlement.exports import pdf  # reportlab is heavy; load it only when a PDF is asked for

        statement, _operator = _load_statement(statement_id)
        # A large statement's PDF holds its breakdowns and the lines to look at; the CSV has every line.
        data = pdf.statement_pdf(documents.statement_pdf_doc(db(), statement.id))
        return _attachment(data, "application/pdf", f"statement-{statement.number}.pdf")


@blp.route("/statements/export/lines.csv")
class MonthLinesCsv(MethodView):
    @staff_required(*FINANCE_ROLES, "auditor")
    @blp.arguments(MonthQuerySchema, location="query")
    @blp.doc(
        security=[{"bearer": []}],
        responses={"200": {"description": "UTF-8 CSV with BOM", "content": {"text/csv": {}}}},
    )
    def get(self, query: dict[str, Any]) -> Any:
        """Every line of every statement of the month, one row per line, no totals (for pivot tables)."""
        period = parse_period(query["period"])
        municipality_id = current_principal().municipality_id
        return _streamed(
            lambda session: documents.month_csv_chunks(
                session, municipality_id=municipality_id, period=period
            ),
            "text/csv; charset=utf-8",
            f"statement-lines-{query['period']}.csv",
        )


@blp.route("/statements/export/summary.csv")
class MonthSummaryCsv(MethodView):
    @staff_required(*FINANCE_ROLES, "auditor")
    @blp.arguments(MonthQuerySchema, location="query")
    @blp.doc(
        security=[{"bearer": []}],
        responses={"200": {"description": "UTF-8 CSV with BOM", "content": {"text/csv": {}}}},
    )
    def get(self, query: dict[str, Any]) -> Any:
        """One row per statement of the month with its totals and payee account, then a 合計 row."""
        docs = documents.period_docs(
            db(), municipality_id=current_principal().municipality_id, period=parse_period(query["period"])
        )
        data = csv_export.month_summary_csv(docs)
        return _attachment(data, "text/csv; charset=utf-8", f"statements-{query['period']}.csv")


@blp.route("/payment-files/zengin")
class ZenginPaymentFile(MethodView):
    @staff_required(*FINANCE_ROLES)
    @blp.arguments(PaymentFileQuerySchema, location="query")
    @blp.doc(
        security=[{"bearer": []}],
        responses={"200": {"description": "全銀協 総合振込 file (Shift_JIS)", "content": {"text/plain": {}}}},
    )
    def get(self, query: dict[str, Any]) -> Any:
        """The bank transfer file paying the month's approved statements (amount due above zero).

        Refused payment_file.nothing_to_pay when no statement of the month is approved and unpaid with
        an amount due; Refused payment_file.refused, with the reason in `errors.payment_file`, when a
        bank or branch code is unknown, a name does not fit, or the date is not a bank business day.
        """
        principal = current_principal()
        period = parse_period(query["period"])
        pay_on = query["payment_date"] or calendar.payment_date(period)
        session = db()
        transfers = documents.transfers_for(session, municipality_id=principal.municipality_id, period=period)
        if not transfers:
            raise Refused("payment_file.nothing_to_pay")
        try:
            data = zengin.transfer_file(
                documents.remitter_of(session, principal.municipality_id), transfers, payment_date=pay_on
            )
        except ValueError as exc:  # ZenginError, or the city's remitter settings incomplete
            raise Refused("payment_file.refused", errors={"payment_file": [str(exc)]}) from exc
        audit.record(
            session,
            at=clock().now(),
            actor=principal.actor,
            action="payment_file.generated",
            entity_type="payment_file",
            entity_id=query["period"],
            municipality_id=principal.municipality_id,
            details={"payment_date": pay_on.isoformat(), "bytes": len(data)},
        )
        return _attachment(data, "text/plain; charset=shift_jis", f"zengin-{query['period']}.txt")


def _streamed(chunks: Callable[[Session], Iterator[bytes]], mimetype: str, filename: str) -> Response:
    """An attachment written while it is sent, from its own session (the request's is closed by then),
    so a month of any size never sits in memory."""
    factory = current_app.extensions["voucher"]["session_factory"]

    def body() -> Iterator[bytes]:
        with factory() as session:
            yield from chunks(session)

    return _attachment(body(), mimetype, filename)


def _attachment(data: bytes | Iterator[bytes], mimetype: str, filename: str) -> Response:
    response = Response(data, status=200, mimetype=mimetype.split(";")[0])
    response.headers["Content-Type"] = mimetype
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _transition(statement_id: int, action: str) -> dict[str, Any]:
    principal = current_principal()
    _load_statement(statement_id)  # 404 outside the caller's city
    session = db()
    now = clock().now()
    if action == "confirm":
        statement = service.confirm_statement(
            session,
            statement_id=statement_id,
            municipality_id=principal.municipality_id,
            staff_id=principal.id,
            actor=principal.actor,
            now=now,
        )
    elif action == "approve":
        statement = service.approve_statement(
            session,
            statement_id=statement_id,
            municipality_id=principal.municipality_id,
            staff_id=principal.id,
            actor=principal.actor,
            now=now,
        )
    else:
        statement = service.pay_statement(
            session,
            statement_id=statement_id,
            municipality_id=principal.municipality_id,
            staff_id=principal.id,
            actor=principal.actor,
            now=now,
        )
    operator = session.get(Operator, statement.operator_id)
    assert operator is not None  # the foreign key guarantees it
    return statement_body(statement, operator)


@blp.route("/statements/<int:statement_id>/confirm")
class ConfirmStatement(MethodView):
    @staff_required("finance")
    @blp.response(200, StatementSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, statement_id: int) -> Any:
        """Finance confirms a draft; from then on it never changes (statement.bad_transition otherwise)."""
        return _transition(statement_id, "confirm")


@blp.route("/statements/<int:statement_id>/approve")
class ApproveStatement(MethodView):
    @staff_required("finance_approver")
    @blp.response(200, StatementSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, statement_id: int) -> Any:
        """A second person approves a confirmed statement (statement.same_person if they confirmed it)."""
        return _transition(statement_id, "approve")


@blp.route("/statements/<int:statement_id>/pay")
class PayStatement(MethodView):
    @staff_required(*FINANCE_ROLES)
    @blp.response(200, StatementSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, statement_id: int) -> Any:
        """Record that an approved statement has been paid."""
        return _transition(statement_id, "pay")


# --- the operator's answer and finance's adjustments ---------------------------------------------


def adjustment_body(adjustment: StatementAdjustment) -> dict[str, Any]:
    """An adjustment as StatementAdjustmentSchema shows it."""
    return {
        "adjustment_id": adjustment.id,
        "disputed_statement_id": adjustment.disputed_statement_id,
        "target_statement_id": adjustment.target_statement_id,
        "amount": adjustment.amount,
        "note": adjustment.note,
        "created_by_id": adjustment.created_by_id,
        "created_at": adjustment.created_at,
    }


def _body_of(statement: Statement) -> dict[str, Any]:
    operator = db().get(Operator, statement.operator_id)
    assert operator is not None  # the foreign key guarantees it
    return statement_body(statement, operator)


def _own_operator(principal: Principal) -> int:
    """The operator an operator admin acts for; an account bound to no operator answers nothing."""
    if principal.operator_id is None:
        raise Forbidden("auth.forbidden")
    return principal.operator_id


@blp.route("/statements/<int:statement_id>/acknowledge")
class AcknowledgeStatement(MethodView):
    @staff_required("operator_admin")
    @blp.arguments(AcknowledgeRequestSchema, required=False)
    @blp.response(200, StatementSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, _body: dict[str, Any], statement_id: int) -> Any:
        """The operator accepts a confirmed statement; final, it ends any dispute. Retrying changes nothing.

        statement.not_confirmed for a draft; statement.not_found for another operator's statement.
        """
        principal = current_principal()
        statement = disputes.acknowledge_statement(
            db(),
            statement_id=statement_id,
            municipality_id=principal.municipality_id,
            operator_id=_own_operator(principal),
            staff_id=principal.id,
            now=clock().now(),
        )
        return _body_of(statement)


@blp.route("/statements/<int:statement_id>/dispute")
class DisputeStatement(MethodView):
    @staff_required("operator_admin")
    @blp.arguments(DisputeRequestSchema)
    @blp.response(200, StatementSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, body: dict[str, Any], statement_id: int) -> Any:
        """The operator disputes a confirmed statement, saying why; disputing again re-opens it.

        statement.not_confirmed for a draft, statement.already_acknowledged once acknowledged,
        statement.not_found for another operator's statement.
        """
        principal = current_principal()
        statement = disputes.dispute_statement(
            db(),
            statement_id=statement_id,
            municipality_id=principal.municipality_id,
            operator_id=_own_operator(principal),
            staff_id=principal.id,
            reason=body["reason"],
            now=clock().now(),
        )
        return _body_of(statement)


@blp.route("/statements/<int:statement_id>/adjustments")
class StatementAdjustments(MethodView):
    @staff_required("finance")
    @idempotent(required=True)
    @blp.arguments(StatementAdjustmentRequestSchema)
    @blp.response(201, StatementAdjustmentResultSchema)
    @blp.doc(
        security=[{"bearer": []}],
        parameters=[{"in": "header", "name": "Idempotency-Key", "required": True}],
    )
    def post(self, body: dict[str, Any], statement_id: int) -> Any:
        """Answer a confirmed statement with an adjustment booked on the operator's next draft statement.

        The statement itself never changes; the line lands on the earliest draft of a later month (a new
        draft for the following month when there is none). adjustment.amount_due_negative when the draft's
        amount due would fall below zero; statement.not_confirmed for a draft.
        """
        principal = current_principal()
        result = disputes.adjust_statement(
            db(),
            statement_id=statement_id,
            municipality_id=principal.municipality_id,
            amount=body["amount"],
            note=body["note"],
            staff_id=principal.id,
            now=clock().now(),
            idempotency_key=idempotency_key(required=True),
        )
        return {"adjustment": adjustment_body(result.adjustment), "target_statement": _body_of(result.target)}

    @staff_required(*READ_ROLES)
    @blp.response(200, StatementAdjustmentSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, statement_id: int) -> Any:
        """The adjustments answering this statement, oldest first."""
        statement, _operator = _load_statement(statement_id)
        return [
            adjustment_body(adjustment)
            for adjustment in disputes.adjustments_answering(db(), statement_id=statement.id)
        ]
