"""Reports for finance staff and auditors: what the city's charts and figures are drawn from."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from voucher_api.api.context import current_principal, db, staff_required
from voucher_api.api.reports.schemas import MonthlyQuerySchema, MonthlyReportSchema
from voucher_api.services import reports
from voucher_api.services.reports import ReportAxis, parse_month

blp = Blueprint("reports", __name__, url_prefix="/reports", description="Monthly figures for finance")

REPORT_ROLES = ("finance", "finance_approver", "auditor")


@blp.route("/monthly")
class MonthlyReport(MethodView):
    @staff_required(*REPORT_ROLES)
    @blp.arguments(MonthlyQuerySchema, location="query")
    @blp.response(200, MonthlyReportSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, query: dict[str, Any]) -> Any:
        """Rides and subsidy per month (boarding month, Japan time) and per operator, district or program.

        Only the caller's city; voided rides are not counted. Months or keys without rides have no row.
        Refused (422) when `to` is before `from` (report.range_reversed) or the range is longer than
        36 months (report.range_too_long).
        """
        rows = reports.monthly(
            db(),
            municipality_id=current_principal().municipality_id,
            first=parse_month(query["from_"]),
            last=parse_month(query["to"]),
            by=ReportAxis(query["by"]),
        )
        return {"from_": query["from_"], "to": query["to"], "by": query["by"], "rows": rows}
