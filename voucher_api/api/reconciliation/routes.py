"""Reconcile a statement against the operator's own ride log: matched, missing and extra rides.

The rules (file format, matching, limits) are in `settlement.reconciliation`; this module reads the
upload, calls it and shapes the answer. Staff see only their own municipality; an operator admin only
their own operator's statements (any other statement is 404, as for the statement resources).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint
from werkzeug.exceptions import RequestEntityTooLarge

from settlement import reconciliation
from settlement.reconciliation import Extra, Matched, Reconciliation, StatementRide
from settlement.statements import format_period
from voucher_api.api.context import clock, current_principal, db, staff_required
from voucher_api.api.problems import language
from voucher_api.api.reconciliation.schemas import ReconciliationQuerySchema, ReconciliationSchema
from voucher_api.clock import JST
from voucher_api.services import audit
from voucher_api.services.errors import DomainError, Refused
from voucher_api.services.tokens import Principal

blp = Blueprint(
    "reconciliation",
    __name__,
    url_prefix="",
    description="Reconcile a statement against the operator's own ride log (CSV)",
)

READ_ROLES = ("finance", "finance_approver", "auditor", "operator_admin")
CITY_ROLES = frozenset({"finance", "finance_approver", "auditor", "admin"})
CSV_TYPES = frozenset(
    {
        "text/csv",
        "application/csv",
        "text/plain",
        "text/tab-separated-values",
        "application/vnd.ms-excel",  # what Windows browsers call a .csv file
        "application/octet-stream",
    }
)
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file itself


def _operator_only(principal: Principal) -> int | None:
    """The operator an operator admin is limited to; None for city staff, who see every operator."""
    if principal.roles & CITY_ROLES:
        return None
    return principal.operator_id if principal.operator_id is not None else -1


def _too_large() -> DomainError:
    return DomainError(
        "reconciliation.too_large", status=413, max_mib=reconciliation.MAX_LOG_BYTES // (1024 * 1024)
    )


def _uploaded_log() -> tuple[bytes, str | None]:
    """The CSV from the raw body (text/csv) or the multipart field `file`, and the charset declared."""
    limit = reconciliation.MAX_LOG_BYTES
    if request.content_length is not None and request.content_length > limit + MULTIPART_SLACK:
        raise _too_large()
    request.max_content_length = limit + MULTIPART_SLACK  # this view only; the app keeps its smaller cap
    try:
        if request.mimetype == "multipart/form-data":
            upload = request.files.get("file")
            if upload is None:
                raise Refused("reconciliation.empty")
            data = upload.stream.read(limit + 1)
            charset = upload.mimetype_params.get("charset")
        elif request.mimetype in CSV_TYPES:
            data = request.stream.read(limit + 1)
            charset = request.mimetype_params.get("charset")
        else:
            raise DomainError("reconciliation.unsupported_media_type", status=415)
    except RequestEntityTooLarge as exc:
        raise _too_large() from exc
    if len(data) > limit:
        raise _too_large()
    return data, charset


def _jst(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(JST)


def _matched_body(pair: Matched, tolerance: timedelta) -> dict[str, Any]:
    return {
        "row": pair.row.row,
        "line_no": pair.line.line_no,
        "kind": pair.line.kind,
        "ride_id": pair.line.ride_id,
        "matched_by": pair.matched_by,
        "boarded_at": _jst(pair.line.boarded_at),
        "their_boarded_at": _jst(pair.row.boarded_at),
        "vehicle": pair.line.vehicle,
        "their_vehicle": pair.row.vehicle,
        "our_meter_fare": pair.line.meter_fare,
        "their_meter_fare": pair.row.meter_fare,
        "meter_fare_difference": pair.meter_fare_difference,
        "our_subsidy": pair.line.subsidy,
        "their_subsidy": pair.row.subsidy,
        "subsidy_difference": pair.subsidy_difference,
        "differences": pair.differences(tolerance),
    }


def _missing_body(line: StatementRide) -> dict[str, Any]:
    return {
        "line_no": line.line_no,
        "kind": line.kind,
        "ride_id": line.ride_id,
        "boarded_at": _jst(line.boarded_at),
        "vehicle": line.vehicle,
        "our_meter_fare": line.meter_fare,
        "our_subsidy": line.subsidy,
    }


def _extra_body(item: Extra, lang: str) -> dict[str, Any]:
    return {
        "row": item.row.row,
        "boarded_at": _jst(item.row.boarded_at),
        "vehicle": item.row.vehicle,
        "their_meter_fare": item.row.meter_fare,
        "their_subsidy": item.row.subsidy,
        "ride_id": item.ride_id,
        "code": item.code,
        "reason": item.note(lang),
        "statement_number": item.statement_number,
        "statement_period": None if item.statement_period is None else format_period(item.statement_period),
        "other_row": item.other_row,
    }


def reconciliation_body(result: Reconciliation, *, encoding: str, lang: str) -> dict[str, Any]:
    """The result as ReconciliationSchema shows it."""
    totals = result.totals
    claimed = result.has_subsidy
    return {
        "statement_id": result.statement_id,
        "number": result.number,
        "period": format_period(result.period),
        "tolerance_minutes": int(result.tolerance.total_seconds() // 60),
        "encoding": encoding,
        "matched": [_matched_body(pair, result.tolerance) for pair in result.matched],
        "missing": [_missing_body(line) for line in result.missing],
        "missing_truncated": result.missing_truncated,
        "extra": [_extra_body(item, lang) for item in result.extra],
        "errors": [{"row": e.row, "code": e.code, "reason": e.reason(lang)} for e in result.errors],
        "totals": {
            "matched": totals.matched,
            "missing": totals.missing,
            "extra": totals.extra,
            "errors": totals.errors,
            "differing": totals.differing,
            "our_meter_fare": totals.our_meter_fare,
            "their_meter_fare": totals.their_meter_fare,
            "meter_fare_difference": totals.meter_fare_difference,
            "our_subsidy": totals.our_subsidy,
            "their_subsidy": totals.their_subsidy if claimed else None,
            "difference": totals.difference if claimed else None,
            "matched_our_meter_fare": totals.matched_our_meter_fare,
            "matched_their_meter_fare": totals.matched_their_meter_fare,
            "matched_our_subsidy": totals.matched_our_subsidy,
            "matched_their_subsidy": totals.matched_their_subsidy if claimed else None,
            "missing_meter_fare": totals.missing_meter_fare,
            "missing_subsidy": totals.missing_subsidy,
            "extra_meter_fare": totals.extra_meter_fare,
            "extra_subsidy": totals.extra_subsidy if claimed else None,
        },
    }


@blp.route("/statements/<int:statement_id>/reconciliation")
class StatementReconciliation(MethodView):
    @staff_required(*READ_ROLES)
    @blp.arguments(ReconciliationQuerySchema, location="query")
    @blp.response(200, ReconciliationSchema)
    @blp.doc(
        security=[{"bearer": []}],
        requestBody={
            "required": True,
            "description": "The operator's ride log as CSV (UTF-8 with or without BOM, or Shift_JIS), "
            "either as the whole body or as the multipart form field `file`; at most 5 MiB.",
            "content": {
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
        },
        responses={"413": {"description": "reconciliation.too_large or reconciliation.too_many_rows"}},
    )
    def post(self, query: dict[str, Any], statement_id: int) -> Any:
        """Compare the statement's rides with the operator's own log: matched, missing and extra rides.

        Columns: 乗車日時, 車両番号, メーター料金, optionally 助成額 and 乗車番号 (English names too).
        A row with a ride number matches that ride; others match the same vehicle boarded within
        `tolerance_minutes`, nearest first. Rows that cannot be read come back in `errors` with their
        row number. Nothing is changed; an audit entry records who compared which statement.
        Refused with reconciliation.too_large / too_many_rows (413), unsupported_media_type (415),
        empty, not_csv, bad_encoding, no_header (422); statement.not_found (404) for a statement
        outside the caller's city or operator. With `format=csv` the same result comes as a UTF-8 CSV
        with BOM for Excel (text/csv attachment).
        """
        principal = current_principal()
        session = db()
        operator_only = _operator_only(principal)
        # 404 before anything is read, so another operator's statement answers the same whatever is sent.
        reconciliation.statement_for(
            session, statement_id, municipality_id=principal.municipality_id, operator_id=operator_only
        )
        data, charset = _uploaded_log()
        log = reconciliation.parse_log(data, charset=charset)
        result = reconciliation.reconcile(
            session,
            statement_id=statement_id,
            municipality_id=principal.municipality_id,
            operator_id=operator_only,
            log=log,
            tolerance=timedelta(minutes=query["tolerance_minutes"]),
        )
        lang = language()
        if query["format"] != "csv":
            _record(principal, result, data, "json")
            return reconciliation_body(result, encoding=log.encoding, lang=lang)
        body = reconciliation.reconciliation_csv(
            result, reconciliation.missing_lines(session, result), lang=lang
        )
        _record(principal, result, data, "csv")
        response = Response(body, status=200, mimetype="text/csv")
        response.headers["Content-Type"] = "text/csv; charset=utf-8"
        response.headers["Content-Disposition"] = f'attachment; filename="reconciliation-{result.number}.csv"'
        response.headers["Cache-Control"] = "no-store"
        return response


def _record(principal: Principal, result: Reconciliation, data: bytes, answer_format: str) -> None:
    """Who compared which statement with which file (its digest, not its content), and what came out."""
    totals = result.totals
    audit.record(
        db(),
        at=clock().now(),
        actor=principal.actor,
        action="statement.reconciled",
        entity_type="statement",
        entity_id=result.statement_id,
        municipality_id=principal.municipality_id,
        details={
            "file_sha256": hashlib.sha256(data).hexdigest(),
            "file_bytes": len(data),
            "format": answer_format,
            "tolerance_minutes": int(result.tolerance.total_seconds() // 60),
            "matched": totals.matched,
            "missing": totals.missing,
            "extra": totals.extra,
            "errors": totals.errors,
            "differing": totals.differing,
            "our_subsidy": totals.our_subsidy,
            "their_subsidy": totals.their_subsidy if result.has_subsidy else None,
        },
    )
