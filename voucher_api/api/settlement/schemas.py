"""Request and response shapes of the settlement resources: runs, statements, their lines."""

from __future__ import annotations

from marshmallow import fields, validate

from voucher_api.api.common import Id, PeriodField, StrictSchema
from voucher_api.models import RunStatus, StatementStatus


class RunRequestSchema(StrictSchema):
    period = PeriodField(required=True, metadata={"description": "the month to close, YYYY-MM (Japan time)"})


class RunQuerySchema(StrictSchema):
    period = PeriodField(load_default=None)


class RunSchema(StrictSchema):
    run_id = fields.Integer()
    period = fields.String(metadata={"description": "YYYY-MM"})
    status = fields.String(validate=validate.OneOf([s.value for s in RunStatus]))
    trigger = fields.String(metadata={"description": "api | cli | beat"})
    requested_by = fields.String()
    operators_total = fields.Integer()
    operators_done = fields.Integer()
    error = fields.String()
    created_at = fields.AwareDateTime()
    started_at = fields.AwareDateTime(allow_none=True)
    finished_at = fields.AwareDateTime(allow_none=True)


class StatementQuerySchema(StrictSchema):
    period = PeriodField(load_default=None)
    operator_id = Id(load_default=None)
    status = fields.String(load_default=None, validate=validate.OneOf([s.value for s in StatementStatus]))


class StatementSchema(StrictSchema):
    statement_id = fields.Integer()
    number = fields.String(metadata={"description": "e.g. 062120-202610-OP01"})
    period = fields.String(metadata={"description": "YYYY-MM"})
    status = fields.String(validate=validate.OneOf([s.value for s in StatementStatus]))
    operator_id = fields.Integer()
    operator_code = fields.String()
    operator_name = fields.String()
    run_id = fields.Integer(allow_none=True)
    ride_count = fields.Integer()
    fare_total = fields.Integer(metadata={"description": "yen"})
    rider_share_total = fields.Integer(metadata={"description": "yen"})
    subsidy_total = fields.Integer(metadata={"description": "yen"})
    adjustment_total = fields.Integer(metadata={"description": "yen"})
    amount_due = fields.Integer(metadata={"description": "yen: subsidy_total + adjustment_total"})
    generated_at = fields.AwareDateTime()
    confirmed_by_id = fields.Integer(allow_none=True)
    confirmed_at = fields.AwareDateTime(allow_none=True)
    approved_by_id = fields.Integer(allow_none=True)
    approved_at = fields.AwareDateTime(allow_none=True)
    paid_at = fields.AwareDateTime(allow_none=True)


class StatementLineSchema(StrictSchema):
    line_no = fields.Integer()
    kind = fields.String(
        metadata={"description": "ride | prior_period | fareless | offline_conflict | adjustment"}
    )
    ride_id = fields.Integer(allow_none=True)
    boarded_at = fields.AwareDateTime(allow_none=True)
    program_id = fields.Integer(allow_none=True)
    vehicle_id = fields.Integer(allow_none=True)
    meter_fare = fields.Integer()
    rider_share = fields.Integer()
    subsidy_amount = fields.Integer()
    note = fields.String()


class StatementDetailSchema(StatementSchema):
    lines = fields.List(fields.Nested(StatementLineSchema))


class MonthQuerySchema(StrictSchema):
    period = PeriodField(required=True)


class PaymentFileQuerySchema(StrictSchema):
    period = PeriodField(required=True)
    payment_date = fields.Date(
        load_default=None,
        metadata={
            "description": "YYYY-MM-DD; default: the 20th of the next month, moved to a bank business day"
        },
    )
