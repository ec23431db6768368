"""Request and response shapes of a statement's reconciliation against the operator's own ride log.

Amounts are integer yen. `our_*` is the statement, `their_*` the operator's log; differences are theirs
minus ours. Times are ISO 8601 in Japan time (+09:00).
"""

from __future__ import annotations

from marshmallow import fields, validate

from voucher_api.api.common import StrictSchema


class ReconciliationQuerySchema(StrictSchema):
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "json (default) or csv: the same result as a UTF-8 CSV with BOM for Excel"},
    )
    tolerance_minutes = fields.Integer(
        load_default=3,
        strict=False,
        validate=validate.Range(0, 30),
        metadata={"description": "how far apart boarding times may be to match by vehicle and time"},
    )


class MatchedSchema(StrictSchema):
    row = fields.Integer(metadata={"description": "row of the log (the file's first row is 1)"})
    line_no = fields.Integer(metadata={"description": "line of the statement"})
    kind = fields.String(metadata={"description": "ride | prior_period | fareless | offline_conflict"})
    ride_id = fields.Integer()
    matched_by = fields.String(metadata={"description": "ride_id | vehicle_time"})
    boarded_at = fields.AwareDateTime(metadata={"description": "ours"})
    their_boarded_at = fields.AwareDateTime()
    vehicle = fields.String(metadata={"description": "ours: the number plate"})
    their_vehicle = fields.String(metadata={"description": "as the log writes it"})
    our_meter_fare = fields.Integer()
    their_meter_fare = fields.Integer()
    meter_fare_difference = fields.Integer()
    our_subsidy = fields.Integer()
    their_subsidy = fields.Integer(allow_none=True, metadata={"description": "null: the row claims none"})
    subsidy_difference = fields.Integer(allow_none=True)
    differences = fields.List(
        fields.String(),
        metadata={
            "description": "what differs: meter_fare, subsidy, vehicle, boarded_at (past the tolerance)"
        },
    )


class MissingSchema(StrictSchema):
    line_no = fields.Integer()
    kind = fields.String()
    ride_id = fields.Integer()
    boarded_at = fields.AwareDateTime(allow_none=True)
    vehicle = fields.String()
    our_meter_fare = fields.Integer()
    our_subsidy = fields.Integer()


class ExtraSchema(StrictSchema):
    row = fields.Integer()
    boarded_at = fields.AwareDateTime(metadata={"description": "as the log gives it"})
    vehicle = fields.String(metadata={"description": "as the log writes it"})
    their_meter_fare = fields.Integer()
    their_subsidy = fields.Integer(allow_none=True)
    ride_id = fields.Integer(
        allow_none=True, metadata={"description": "the log's ride number, or the ride found"}
    )
    code = fields.String(
        metadata={
            "description": "reconciliation.extra.<reason>: not_found, voided, other_statement, "
            "not_on_a_statement, already_matched, duplicate_in_log, unknown_vehicle"
        }
    )
    reason = fields.String(metadata={"description": "the reason in the reader's language"})
    statement_number = fields.String(allow_none=True, metadata={"description": "for other_statement"})
    statement_period = fields.String(
        allow_none=True, metadata={"description": "YYYY-MM, for other_statement"}
    )
    other_row = fields.Integer(
        allow_none=True,
        metadata={"description": "the row already matched or repeated (already_matched, duplicate)"},
    )


class RowErrorSchema(StrictSchema):
    row = fields.Integer()
    code = fields.String()
    reason = fields.String()


class TotalsSchema(StrictSchema):
    matched = fields.Integer()
    missing = fields.Integer()
    extra = fields.Integer()
    errors = fields.Integer()
    differing = fields.Integer(metadata={"description": "matched pairs whose fare or claimed subsidy differ"})
    our_meter_fare = fields.Integer(metadata={"description": "matched + missing"})
    their_meter_fare = fields.Integer(metadata={"description": "matched + extra"})
    meter_fare_difference = fields.Integer()
    our_subsidy = fields.Integer(
        metadata={"description": "every ride line of the statement: matched + missing"}
    )
    their_subsidy = fields.Integer(
        allow_none=True, metadata={"description": "matched + extra; null when the log has no 助成額 column"}
    )
    difference = fields.Integer(allow_none=True, metadata={"description": "their_subsidy − our_subsidy"})
    matched_our_meter_fare = fields.Integer()
    matched_their_meter_fare = fields.Integer()
    matched_our_subsidy = fields.Integer()
    matched_their_subsidy = fields.Integer(allow_none=True)
    missing_meter_fare = fields.Integer()
    missing_subsidy = fields.Integer()
    extra_meter_fare = fields.Integer()
    extra_subsidy = fields.Integer(allow_none=True)


class ReconciliationSchema(StrictSchema):
    statement_id = fields.Integer()
    number = fields.String()
    period = fields.String(metadata={"description": "YYYY-MM"})
    tolerance_minutes = fields.Integer()
    encoding = fields.String(
        metadata={"description": "how the file was read: utf-8, utf-8-sig, cp932, utf-16"}
    )
    matched = fields.List(fields.Nested(MatchedSchema))
    missing = fields.List(fields.Nested(MissingSchema))
    missing_truncated = fields.Boolean(
        metadata={"description": "true when more lines are missing than listed; totals count them all"}
    )
    extra = fields.List(fields.Nested(ExtraSchema))
    errors = fields.List(fields.Nested(RowErrorSchema))
    totals = fields.Nested(TotalsSchema)
