"""Statements in the database mapped onto the exports' documents (CSV, PDF, Zengin)."""

from __future__ import annotations

import csv
import io
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from settlement import documents, service
from settlement.exports import csv_export
from tests import factories as f
from tests.unit.settlement.factories import City, city, jst, ride
from voucher_api.models import StaffRole, Statement

SEPTEMBER = date(2026, 9, 1)
AFTER = jst(2026, 10, 1, 2, 0)


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def closed(session: Session, town: City) -> None:
    run = service.start_run(
        session, municipality_id=town.mun.id, period=SEPTEMBER, trigger="cli", requested_by="t", now=AFTER
    )
    for operator_id in service.begin_run(session, run_id=run.id, now=AFTER).operator_ids:
        service.close_operator(session, run_id=run.id, operator_id=operator_id, now=AFTER)
    service.finish_run(session, run_id=run.id, now=AFTER)


def first_statement(session: Session, town: City) -> Statement:
    found = session.scalar(select(Statement).where(Statement.operator_id == town.fleets[0].operator.id))
    assert found is not None
    return found


def test_statement_document_carries_the_lines_with_program_vehicle_and_district(session: Session) -> None:
    town = city(session, operators=1)
    made = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 3), fare=1800)
    closed(session, town)
    doc = documents.statement_doc(session, first_statement(session, town).id)
    line = doc.lines[0]
    assert (doc.statement_number, doc.municipality_name, doc.ride_count, doc.amount_due) == (
        "062120-202609-OP01",
        "尾花沢市",
        1,
        900,
    )
    assert (line.ride_ref, line.program_name, line.district_name, line.vehicle, line.subsidy_amount) == (
        str(made.id),
        "高齢者おもいやりタクシー",
        "尾花沢",
        town.fleets[0].vehicle.registration,
        900,
    )
    assert doc.bank is not None
    assert doc.bank.account_number == "1234567"


def test_fareless_line_is_printed_as_such_with_a_note_saying_why(session: Session) -> None:
    town = city(session, operators=1)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 3), fare=None)
    closed(session, town)
    line = documents.statement_doc(session, first_statement(session, town).id).lines[0]
    assert line.kind == "fareless"
    assert "運賃未入力" in line.note


def test_signatories_are_the_staff_who_confirmed_and_approved(session: Session) -> None:
    town = city(session, operators=1)
    closed(session, town)
    statement = first_statement(session, town)
    clerk = f.staff_user(session, town.mun, StaffRole.FINANCE)
    chief = f.staff_user(session, town.mun, StaffRole.FINANCE_APPROVER)
    chief.display_name = "会計課長"
    for act, who in ((service.confirm_statement, clerk), (service.approve_statement, chief)):
        act(
            session,
            statement_id=statement.id,
            municipality_id=town.mun.id,
            staff_id=who.id,
            actor="t",
            now=AFTER,
        )
    doc = documents.statement_doc(session, statement.id, with_lines=False)
    assert (doc.status, doc.prepared_by, doc.approved_by) == ("approved", "窓口 太郎", "会計課長")


def test_month_csv_streams_every_line_of_every_statement(session: Session) -> None:
    town = city(session, operators=2)
    for fleet in town.fleets:
        ride(session, town, fleet, boarded_at=jst(2026, 9, 3))
        ride(session, town, fleet, boarded_at=jst(2026, 9, 4))
    closed(session, town)
    stream = io.BytesIO()
    written = documents.write_month_csv(session, municipality_id=town.mun.id, period=SEPTEMBER, stream=stream)
    rows = rows_of(stream.getvalue())
    assert written == 4
    assert rows[0] == list(csv_export.LINE_HEADER)
    assert [(row[1], row[5], row[7]) for row in rows[1:]] == [
        ("062120-202609-OP01", "1", "2026/09/03 10:00"),
        ("062120-202609-OP01", "2", "2026/09/04 10:00"),
        ("062120-202609-OP02", "1", "2026/09/03 10:00"),
        ("062120-202609-OP02", "2", "2026/09/04 10:00"),
    ]


def test_only_approved_statements_with_money_due_become_transfers(session: Session) -> None:
    town = city(session, operators=2)
    ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 3), fare=1800)
    ride(session, town, town.fleets[1], boarded_at=jst(2026, 9, 3), fare=1800)
    closed(session, town)
    statement = first_statement(session, town)
    clerk = f.staff_user(session, town.mun, StaffRole.FINANCE)
    chief = f.staff_user(session, town.mun, StaffRole.FINANCE_APPROVER)
    for act, who in ((service.confirm_statement, clerk), (service.approve_statement, chief)):
        act(
            session,
            statement_id=statement.id,
            municipality_id=town.mun.id,
            staff_id=who.id,
            actor="t",
            now=AFTER,
        )
    transfers = documents.transfers_for(session, municipality_id=town.mun.id, period=SEPTEMBER)
    assert [(t.amount, t.customer_code) for t in transfers] == [(900, str(statement.id))]


def test_written_statement_csv_is_its_streamed_csv_lines_then_totals(session: Session) -> None:
    town = city(session, operators=1)
    for day in (3, 4, 5):
        ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, day), fare=1200 + day)
    fareless = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 6), fare=None)
    closed(session, town)
    statement_id = first_statement(session, town).id
    stream = io.BytesIO()
    written = documents.write_statement_csv(session, statement_id, stream)
    whole = b"".join(documents.statement_csv_chunks(session, statement_id))
    assert (written, stream.getvalue()) == (4, whole)
    rows = rows_of(whole)
    assert [(row[5], row[6], row[12], row[14]) for row in rows[1:5]] == [
        ("1", "乗車", "1203", "601"),
        ("2", "乗車", "1204", "602"),
        ("3", "乗車", "1205", "602"),
        ("4", "料金未入力", "0", "0"),
    ]
    assert rows[4][8] == str(fareless.id)
    assert "運賃未入力" in rows[4][15]
    assert rows[5:] == [
        [],
        ["乗車件数", "4"],
        ["運賃合計(円)", "3612"],
        ["利用者負担合計(円)", "1807"],
        ["助成額合計(円)", "1805"],
        ["調整額(円)", "0"],
        ["支払額(円)", "1805"],
    ]


def test_pdf_of_a_statement_over_the_line_limit_lists_only_the_lines_to_look_at(session: Session) -> None:
    town = city(session, operators=1)
    for day in (3, 4, 5):
        ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, day), fare=1800)
    fareless = ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 6), fare=None)
    closed(session, town)
    doc = documents.statement_pdf_doc(session, first_statement(session, town).id, line_limit=3)
    assert doc.line_count == 4
    assert [(line.kind, line.ride_ref) for line in doc.lines] == [("fareless", str(fareless.id))]
    assert [(row.label, row.lines, row.subsidy_amount) for row in doc.kind_summary] == [
        ("乗車", 3, 2700),
        ("料金未入力", 1, 0),
    ]
    assert [(row.lines, row.meter_fare) for row in doc.program_summary] == [(4, 5400)]
    assert [(row.label, row.lines) for row in doc.day_summary] == [
        ("9月3日", 1),
        ("9月4日", 1),
        ("9月5日", 1),
        ("9月6日", 1),
    ]


def test_pdf_of_a_statement_within_the_line_limit_lists_every_line(session: Session) -> None:
    town = city(session, operators=1)
    for day in (3, 4):
        ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, day), fare=1800)
    closed(session, town)
    doc = documents.statement_pdf_doc(session, first_statement(session, town).id, line_limit=3)
    assert (doc.line_count, len(doc.lines), doc.day_summary) == (None, 2, ())


def test_pdf_breakdown_by_day_counts_days_in_japan_time_and_caps_the_lines_to_look_at(
    session: Session,
) -> None:
    town = city(session, operators=1)
    # 00:30 on the 3rd in Japan is still the 2nd in UTC; 23:50 on the 3rd is the 3rd in both.
    for hour, minute in ((0, 30), (23, 50)):
        ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, 3, hour, minute), fare=1800)
    for day in (4, 5, 6):
        ride(session, town, town.fleets[0], boarded_at=jst(2026, 9, day), fare=None)
    closed(session, town)
    doc = documents.statement_pdf_doc(
        session, first_statement(session, town).id, line_limit=3, attention_limit=2
    )
    assert [(row.label, row.lines) for row in doc.day_summary] == [
        ("9月3日", 2),
        ("9月4日", 1),
        ("9月5日", 1),
        ("9月6日", 1),
    ]
    # Three fare-less lines to look at; the PDF lists two of them and the kind breakdown counts all.
    assert ([line.kind for line in doc.lines], doc.line_count) == (["fareless", "fareless"], 5)
    assert ("料金未入力", 3) in [(row.label, row.lines) for row in doc.kind_summary]
