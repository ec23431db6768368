"""Programs are data: the shapes of their rules, validated, and the pure arithmetic they imply.

Eligibility is a list of predicates that must all hold (an `any_of` predicate nests alternatives).
Subsidy formulas: `ticket`, `percent_capped`, `fixed_copay` (DESIGN §4). Limits count rides per Japan-time
day, month and fiscal year.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from voucher_api.services.errors import Refused

LICENCE_STATES = ("none", "held", "returned")
DISABILITY_KINDS = ("physical", "intellectual", "mental")
AGE_REFERENCES = ("fiscal_year_start", "application_date")


class _Strict(Schema):
    class Meta:
        unknown = "raise"


class DisabilityRuleSchema(_Strict):
    kind = fields.String(required=True, validate=validate.OneOf(DISABILITY_KINDS))
    grades = fields.List(
        fields.String(validate=validate.Length(1, 3)), required=True, validate=validate.Length(1)
    )


class PredicateSchema(_Strict):
    type = fields.String(
        required=True,
        validate=validate.OneOf(["min_age", "max_age", "car_licence", "disability", "district", "any_of"]),
    )
    years = fields.Integer(validate=validate.Range(0, 130))
    on = fields.String(validate=validate.OneOf(AGE_REFERENCES), load_default="fiscal_year_start")
    states = fields.List(fields.String(validate=validate.OneOf(LICENCE_STATES)), validate=validate.Length(1))
    certificates = fields.List(fields.Nested(DisabilityRuleSchema), validate=validate.Length(1))
    districts = fields.List(fields.String(validate=validate.Length(1, 10)), validate=validate.Length(1))
    predicates = fields.List(fields.Nested(lambda: PredicateSchema()), validate=validate.Length(1))
    label_ja = fields.String(validate=validate.Length(max=100))
    label_en = fields.String(validate=validate.Length(max=100))

    @validates_schema
    def _fields_for_type(self, data: dict[str, Any], **_: Any) -> None:
        needs = {
            "min_age": "years",
            "max_age": "years",
            "car_licence": "states",
            "disability": "certificates",
            "district": "districts",
            "any_of": "predicates",
        }[data["type"]]
        if needs not in data:
            raise ValidationError(f"'{data['type']}' needs '{needs}'", field_name=needs)


class SubsidySchema(_Strict):
    formula = fields.String(
        required=True, validate=validate.OneOf(["ticket", "percent_capped", "fixed_copay"])
    )
    ticket_value = fields.Integer(validate=validate.Range(1, 100_000))
    max_tickets_per_ride = fields.Integer(validate=validate.Range(1, 20))
    percent = fields.Integer(validate=validate.Range(1, 100))
    cap_per_ride = fields.Integer(allow_none=True, validate=validate.Range(1, 1_000_000))
    copay = fields.Integer(validate=validate.Range(0, 100_000))
    shared_cap_per_person = fields.Integer(allow_none=True, validate=validate.Range(1, 1_000_000))

    @validates_schema
    def _fields_for_formula(self, data: dict[str, Any], **_: Any) -> None:
        needed = {
            "ticket": ("ticket_value", "max_tickets_per_ride"),
            "percent_capped": ("percent", "cap_per_ride"),
            "fixed_copay": ("copay",),
        }[data["formula"]]
        missing = [name for name in needed if data.get(name) is None]
        if missing:
            raise ValidationError(f"formula '{data['formula']}' needs {', '.join(missing)}")


class GrantSchema(_Strict):
    unit = fields.String(required=True, validate=validate.OneOf(["ride", "ticket", "yen"]))
    amount = fields.Integer(required=True, validate=validate.Range(1, 10_000_000))


class LimitsSchema(_Strict):
    per_day = fields.Integer(allow_none=True, validate=validate.Range(1, 100))
    per_month = fields.Integer(allow_none=True, validate=validate.Range(1, 1000))
    per_year = fields.Integer(allow_none=True, validate=validate.Range(1, 10_000))


class OptionsSchema(_Strict):
    tap_allowed = fields.Boolean(load_default=False)
    void_window_minutes = fields.Integer(load_default=10, validate=validate.Range(0, 24 * 60))
    fareless_after_hours = fields.Integer(load_default=12, validate=validate.Range(1, 24 * 31))
    fareless_rule = fields.String(load_default="no_subsidy", validate=validate.OneOf(["no_subsidy", "cap"]))
    offline_max_rides_per_day = fields.Integer(load_default=2, validate=validate.Range(0, 20))
    offline_loss_borne_by = fields.String(load_default="city", validate=validate.OneOf(["city", "operator"]))


class ProgramRulesSchema(_Strict):
    eligibility = fields.List(fields.Nested(PredicateSchema), required=True)
    subsidy = fields.Nested(SubsidySchema, required=True)
    grant = fields.Nested(GrantSchema, required=True)
    limits = fields.Nested(LimitsSchema, load_default=dict)
    options = fields.Nested(OptionsSchema, load_default=dict)

    @validates_schema
    def _unit_fits_formula(self, data: dict[str, Any], **_: Any) -> None:
        if data["subsidy"]["formula"] == "ticket" and data["grant"]["unit"] != "ticket":
            raise ValidationError("a 'ticket' formula grants tickets", field_name="grant")
        if data["grant"]["unit"] == "ticket" and data["subsidy"]["formula"] != "ticket":
            raise ValidationError("tickets need the 'ticket' formula", field_name="grant")


def validate_rules(rules: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise a program's rules; raises Refused('program.invalid_rules') with field errors."""
    try:
        loaded: dict[str, Any] = ProgramRulesSchema().load(rules)
    except ValidationError as exc:
        raise Refused("program.invalid_rules", errors=exc.messages_dict) from exc
    loaded["options"] = OptionsSchema().load(loaded.get("options") or {})
    return loaded


# --- eligibility -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonFacts:
    """What eligibility rules may look at; built from the resident record."""

    birth_date: date
    car_licence: str
    disability_certificates: tuple[tuple[str, str], ...]  # (kind, grade)
    district_code: str | None

    def age_on(self, day: date) -> int:
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years


@dataclass(frozen=True)
class Reason:
    rule: str
    met: bool
    ja: str
    en: str

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "met": self.met, "ja": self.ja, "en": self.en}


LICENCE_JA = {"none": "運転免許なし", "held": "運転免許あり", "returned": "運転免許返納済み"}
KIND_JA = {"physical": "身体障害者手帳", "intellectual": "療育手帳", "mental": "精神障害者保健福祉手帳"}


def evaluate_predicate(
    pred: dict[str, Any],
    person: PersonFacts,
    *,
    fiscal_year_start: date,
    today: date,
    district_names: dict[str, str],
) -> Reason:
    """Whether one predicate holds for the person, with the reason in words a resident understands."""
    kind = pred["type"]
    if kind in ("min_age", "max_age"):
        ref = fiscal_year_start if pred.get("on", "fiscal_year_start") == "fiscal_year_start" else today
        age = person.age_on(ref)
        years = int(pred["years"])
        met = age >= years if kind == "min_age" else age <= years
        ref_ja = f"{ref.year}年{ref.month}月{ref.day}日"
        cmp_ja, cmp_en = ("以上", "at least") if kind == "min_age" else ("以下", "at most")
        return Reason(
            kind,
            met,
            f"{ref_ja}時点で{age}歳({years}歳{cmp_ja}が条件)",
            f"Aged {age} on {ref.isoformat()} (must be {cmp_en} {years})",
        )
    if kind == "car_licence":
        states = list(pred["states"])
        met = person.car_licence in states
        wanted = "・".join(LICENCE_JA[s] for s in states)
        return Reason(
            kind,
            met,
            f"{LICENCE_JA.get(person.car_licence, person.car_licence)}(条件: {wanted})",
            f"Car licence: {person.car_licence} (must be {' or '.join(states)})",
        )
    if kind == "disability":
        held = [
            f"{KIND_JA[k]} {g}級" if k != "intellectual" else f"{KIND_JA[k]} {g}"
            for k, g in person.disability_certificates
        ]
        met = any(
            (k, g) in {(rule["kind"], grade) for rule in pred["certificates"] for grade in rule["grades"]}
            for k, g in person.disability_certificates
        )
        wanted = "、".join(f"{KIND_JA[r['kind']]}({'・'.join(r['grades'])})" for r in pred["certificates"])
        have = "、".join(held) if held else "手帳なし"
        return Reason(
            kind,
            met,
            f"{have}(条件: {wanted})",
            "Disability certificates: "
            + (", ".join(f"{k} {g}" for k, g in person.disability_certificates) or "none"),
        )
    if kind == "district":
        districts = list(pred["districts"])
        met = person.district_code in districts
        name = district_names.get(person.district_code or "", "不明")
        wanted = "・".join(district_names.get(d, d) for d in districts)
        return Reason(
            kind,
            met,
            f"お住まいの地区: {name}(条件: {wanted})",
            f"District {person.district_code} (must be one of {districts})",
        )
    # any_of
    parts = [
        evaluate_predicate(
            p, person, fiscal_year_start=fiscal_year_start, today=today, district_names=district_names
        )
        for p in pred["predicates"]
    ]
    met = any(p.met for p in parts)
    return Reason(
        "any_of",
        met,
        "いずれかに該当: " + " / ".join(("○ " if p.met else "× ") + p.ja for p in parts),
        "Any of: " + " / ".join(("yes " if p.met else "no ") + p.en for p in parts),
    )


# --- fares -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FareSplit:
    """How a meter fare divides between the city (subsidy) and the rider, and the units it uses."""

    units_used: int
    subsidy: int
    rider_share: int


def units_to_hold(subsidy: dict[str, Any], unit: str, balance: int) -> int:
    """How many units boarding reserves, before the fare is known (never more than the balance)."""
    if unit == "ride":
        wanted = 1
    elif unit == "ticket":
        wanted = int(subsidy["max_tickets_per_ride"])
    else:  # yen: the most one ride can be subsidised
        wanted = int(subsidy.get("cap_per_ride") or subsidy.get("shared_cap_per_person") or 10_000)
    return min(wanted, balance)


def split_fare(
    subsidy: dict[str, Any], unit: str, held: int, fare: int, *, shared: bool = False
) -> FareSplit:
    """Apply the program's formula to a meter fare (integer yen, rounded down in the rider's favour never).

    - ticket: tickets of ¥V, at most the held number, enough to cover the fare; no change is given, so the
      subsidy is the smaller of the tickets' value and the fare;
    - percent_capped: P % of the fare (rounded down to the yen) up to ¥C;
    - fixed_copay: the rider pays ¥X (or the whole fare if less), the city the rest, capped by ¥C if set.
    A shared ride caps each person's subsidy at `shared_cap_per_person`. A yen budget caps at what was held.
    """
    if fare < 0:
        raise ValueError("fare must not be negative")
    formula = subsidy["formula"]
    if fare == 0:
        return FareSplit(units_used=0 if unit != "ride" else 1, subsidy=0, rider_share=0)
    if formula == "ticket":
        value = int(subsidy["ticket_value"])
        tickets = min(held, math.ceil(fare / value))
        amount = min(tickets * value, fare)
        if shared and subsidy.get("shared_cap_per_person"):
            amount = min(amount, int(subsidy["shared_cap_per_person"]))
        return FareSplit(units_used=tickets, subsidy=amount, rider_share=fare - amount)
    if formula == "percent_capped":
        amount = fare * int(subsidy["percent"]) // 100
        if subsidy.get("cap_per_ride"):
            amount = min(amount, int(subsidy["cap_per_ride"]))
    else:  # fixed_copay
        amount = max(fare - int(subsidy["copay"]), 0)
        if subsidy.get("cap_per_ride"):
            amount = min(amount, int(subsidy["cap_per_ride"]))
    if shared and subsidy.get("shared_cap_per_person"):
        amount = min(amount, int(subsidy["shared_cap_per_person"]))
    if unit == "yen":
        amount = min(amount, held)
        return FareSplit(units_used=amount, subsidy=amount, rider_share=fare - amount)
    return FareSplit(units_used=1, subsidy=amount, rider_share=fare - amount)
