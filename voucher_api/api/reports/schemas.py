"""Request and response shapes of the reports: monthly rides and subsidy by operator, district, program."""

from __future__ import annotations

from marshmallow import fields, validate

from voucher_api.api.common import PeriodField, StrictSchema
from voucher_api.services.reports import MAX_MONTHS, ReportAxis


class MonthlyQuerySchema(StrictSchema):
    from_ = PeriodField(
        required=True, data_key="from", metadata={"description": "first month, YYYY-MM (Japan time)"}
    )
    to = PeriodField(
        required=True,
        metadata={"description": f"last month, YYYY-MM, included; at most {MAX_MONTHS} months after 'from'"},
    )
    by = fields.String(
        load_default=ReportAxis.OPERATOR.value,
        validate=validate.OneOf([axis.value for axis in ReportAxis]),
        metadata={"description": "operator | district (the resident's registered district) | program"},
    )


class MonthlyRowSchema(StrictSchema):
    period = fields.String(metadata={"description": "YYYY-MM: the month the rides boarded, Japan time"})
    key = fields.String(
        allow_none=True,
        metadata={"description": "operator, district or program code; null: no registered district"},
    )
    label = fields.String(metadata={"description": "the operator's, district's or program's name"})
    rides = fields.Integer(metadata={"description": "rides boarded in the month, voided rides excluded"})
    subsidy = fields.Integer(metadata={"description": "yen: the city's share of those rides"})


class MonthlyReportSchema(StrictSchema):
    from_ = fields.String(data_key="from")
    to = fields.String()
    by = fields.String()
    rows = fields.List(fields.Nested(MonthlyRowSchema))
