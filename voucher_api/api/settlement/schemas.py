"""Request and response shapes of the settlement resources: runs, statements, their lines."""

from __future__ import annotations

from marshmallow import fields, validate

from settlement.disputes import MAX_ADJUSTMENT, NOTE_MAX, REASON_MAX
from voucher_api.api.common import Id, PeriodField, StrictSchema
from voucher_api.models import OperatorResponse, RunStatus, StatementStatus


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
    operators = fields.List(
        fields.Nested(lambda: RunOperatorSchema()),
        metadata={"description": "one run only: where the run stands for each operator of the city"},
    )


class RunOperatorSchema(StrictSchema):
    operator_id = fields.Integer()
    operator_code = fields.String()
    operator_name = fields.String()
    state = fields.String(
        metadata={
            "description": "generated (this run built its statement) | kept (already confirmed, never "
            "rebuilt) | waiting"
        }
    )
    statement_id = fields.Integer(allow_none=True)
    statement_status = fields.String(allow_none=True)


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
    paid_by_id = fields.Integer(allow_none=True)
    operator_response = fields.String(
        validate=validate.OneOf([r.value for r in OperatorResponse]),
        metadata={"description": "none | acknowledged (final) | disputed"},
    )
    operator_response_by_id = fields.Integer(allow_none=True)
    operator_response_at = fields.AwareDateTime(allow_none=True)
    dispute_reason = fields.String(metadata={"description": "the latest dispute's reason; empty if none"})
    dispute_answered = fields.Boolean(
        metadata={"description": "finance has answered the latest dispute with an adjustment"}
    )


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
    confirmed_by_name = fields.String(allow_none=True, metadata={"description": "who confirmed it"})
    approved_by_name = fields.String(allow_none=True, metadata={"description": "who approved it"})
    paid_by_name = fields.String(
        allow_none=True, metadata={"description": "who recorded it paid (null if paid before this was kept)"}
    )
    lines = fields.List(fields.Nested(StatementLineSchema))
    lines_total = fields.Integer(metadata={"description": "how many lines the statement has in all"})
    lines_offset = fields.Integer()
    lines_limit = fields.Integer()


class LinePageQuerySchema(StrictSchema):
    limit = fields.Integer(load_default=500, validate=validate.Range(1, 1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, 10_000_000))


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


class AcknowledgeRequestSchema(StrictSchema):
    """No fields: the body may be left out (or be `{}`)."""


class DisputeRequestSchema(StrictSchema):
    reason = fields.String(
        required=True,
        validate=validate.Length(1, REASON_MAX),
        metadata={"description": f"why the operator disputes the statement, 1..{REASON_MAX} characters"},
    )


class StatementAdjustmentRequestSchema(StrictSchema):
    amount = fields.Integer(
        required=True,
        strict=True,
        validate=[
            validate.Range(-MAX_ADJUSTMENT, MAX_ADJUSTMENT),
            validate.NoneOf([0], error="must not be zero"),
        ],
        metadata={"description": "yen, non-zero: positive pays the operator more, negative deducts"},
    )
    note = fields.String(
        required=True,
        validate=validate.Length(1, NOTE_MAX),
        metadata={"description": f"one line, 1..{NOTE_MAX} characters, printed on the statement"},
    )


class StatementAdjustmentSchema(StrictSchema):
    adjustment_id = fields.Integer()
    disputed_statement_id = fields.Integer(metadata={"description": "the statement this answers"})
    target_statement_id = fields.Integer(metadata={"description": "the later draft the line was booked on"})
    amount = fields.Integer(metadata={"description": "yen"})
    note = fields.String()
    created_by_id = fields.Integer()
    created_at = fields.AwareDateTime()


class StatementAdjustmentResultSchema(StrictSchema):
    adjustment = fields.Nested(StatementAdjustmentSchema)
    target_statement = fields.Nested(StatementSchema)
