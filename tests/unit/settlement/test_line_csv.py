"""The line CSVs (a statement's, the month's) as the database formats them (settlement.documents).

Every test runs on whichever database the suite runs on: COPY … TO STDOUT on PostgreSQL, a cursor and
Python's csv module on SQLite. Both must write the same file.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session

from settlement import documents
from settlement.exports.csv_export import BOM, FORMULA_TRIGGERS, LINE_HEADER, csv_rows
from tests.unit.settlement.factories import City, Fleet, city, fleet, jst, ride, statement_with
from voucher_api.models import (
    District,
    Program,
    Statement,
    StatementLine,
    StatementLineKind,
)
from voucher_api.services.errors import NotFound

SEPTEMBER = date(2026, 9, 1)
COLUMN = {name: index for index, name in enumerate(LINE_HEADER)}
QUOTED = re.compile(rb'"(?:[^"]|"")*"')


# --- factories -------------------------------------------------------------------------------------


def ride_line(
    session: Session, town: City, where: Fleet, *, boarded_at: datetime | None = None, **overrides: Any
) -> StatementLine:
    """An unsaved `ride` line for a new ride of `where`, carrying the ride's program, vehicle, district
    and amounts unless overridden."""
    made = ride(session, town, where, boarded_at=boarded_at or jst(2026, 9, 3))
    values: dict[str, Any] = {
        "kind": StatementLineKind.RIDE,
        "ride_id": made.id,
        "boarded_at": made.boarded_at,
        "program_id": made.program_id,
        "vehicle_id": made.vehicle_id,
        "district_id": town.resident.district_id,
        "meter_fare": made.meter_fare or 0,
        "rider_share": made.rider_share or 0,
        "subsidy_amount": made.subsidy_amount or 0,
        "note": "",
    }
    values.update(overrides)
    return StatementLine(**values)


def adjustment_line(amount: int, note: str = "前月分の調整") -> StatementLine:
    """An unsaved adjustment line: no ride, no boarding time, no program, vehicle or district."""
    return StatementLine(kind=StatementLineKind.ADJUSTMENT, subsidy_amount=amount, note=note)


def one_line(session: Session, **overrides: Any) -> tuple[City, Statement]:
    """A one-operator city whose September statement holds a single ride line."""
    town = city(session, operators=1)
    where = town.fleets[0]
    return town, statement_with(session, town, where, [ride_line(session, town, where, **overrides)])


# --- reading what was written -----------------------------------------------------------------------


def statement_csv(session: Session, statement: Statement) -> bytes:
    return b"".join(documents.statement_csv_chunks(session, statement.id))


def month_csv(session: Session, town: City, period: date = SEPTEMBER) -> bytes:
    return b"".join(documents.month_csv_chunks(session, municipality_id=town.mun.id, period=period))


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def first_line(data: bytes) -> list[str]:
    return rows_of(data)[1]


def raw_rows(data: bytes) -> list[bytes]:
    """The file's records as written (no BOM, no line end); for files without line breaks in cells."""
    return data.removeprefix(BOM).split(b"\r\n")


# --- the file ----------------------------------------------------------------------------------------


def test_statement_csv_starts_with_a_single_bom(session: Session) -> None:
    _, statement = one_line(session)
    data = statement_csv(session, statement)
    assert data.startswith(BOM)
    assert data.count(BOM) == 1


def test_month_csv_of_several_statements_has_a_single_bom_at_the_start(session: Session) -> None:
    town = city(session, operators=2)
    for where in town.fleets:
        statement_with(session, town, where, [ride_line(session, town, where)])
    data = month_csv(session, town)
    assert data.startswith(BOM)
    assert data.count(BOM) == 1


def test_every_line_ends_with_crlf_and_no_bare_lf_is_left_outside_quoted_cells(session: Session) -> None:
    town = city(session, operators=1)
    where = town.fleets[0]
    statement = statement_with(
        session,
        town,
        where,
        [ride_line(session, town, where, note="1行目\n2行目"), adjustment_line(-300, "訂正\n再計算")],
    )
    for data in (statement_csv(session, statement), month_csv(session, town)):
        assert data.endswith(b"\r\n")
        outside = QUOTED.sub(b"", data)
        assert outside.count(b"\n") == outside.count(b"\r\n") > 0


def test_header_row_is_japanese(session: Session) -> None:
    _, statement = one_line(session)
    header = rows_of(statement_csv(session, statement))[0]
    assert header == list(LINE_HEADER)
    assert header[:5] == ["対象年月", "精算書番号", "市区町村コード", "事業者コード", "事業者名"]


def test_a_ride_line_has_every_cell_in_header_order(session: Session) -> None:
    town = city(session, operators=1)
    where = town.fleets[0]
    line = ride_line(session, town, where, boarded_at=jst(2026, 9, 3, 9, 5), note="迎車あり")
    statement = statement_with(session, town, where, [line])
    assert first_line(statement_csv(session, statement)) == [
        "2026/09",
        "062120-202609-OP01",
        "062120",
        "OP01",
        "尾花沢タクシー株式会社",
        "1",
        "乗車",
        "2026/09/03 09:05",
        str(line.ride_id),
        "高齢者おもいやりタクシー",
        "尾花沢",
        where.vehicle.registration,
        "2000",
        "1000",
        "1000",
        "迎車あり",
    ]


def test_both_databases_write_the_lines_as_the_csv_module_would(session: Session) -> None:
    # Byte for byte: same quoting (only when needed), same empty cells, same line ends, then the totals.
    town = city(session, operators=1)
    where = town.fleets[0]
    where.operator.name = '尾花沢交通,有限会社 "本社"'
    first = ride_line(session, town, where, boarded_at=jst(2026, 9, 3, 9, 5), meter_fare=2300)
    second = ride_line(
        session, town, where, boarded_at=jst(2026, 9, 4, 18, 40), note="=1+1", district_id=None
    )
    statement = statement_with(session, town, where, [first, second, adjustment_line(-700, "")])
    name, plate = where.operator.name, where.vehicle.registration
    common = ["2026/09", "062120-202609-OP01", "062120", "OP01", name]
    program = "高齢者おもいやりタクシー"
    expected = (
        BOM
        + csv_rows(
            [
                LINE_HEADER,
                [
                    *common,
                    1,
                    "乗車",
                    "2026/09/03 09:05",
                    first.ride_id,
                    program,
                    "尾花沢",
                    plate,
                    2300,
                    1000,
                    1000,
                    None,
                ],
                [
                    *common,
                    2,
                    "乗車",
                    "2026/09/04 18:40",
                    second.ride_id,
                    program,
                    None,
                    plate,
                    2000,
                    1000,
                    1000,
                    "'=1+1",
                ],
                [*common, 3, "調整", None, None, None, None, None, 0, 0, -700, None],
            ]
        )
        + csv_rows(
            [
                [],
                ["乗車件数", 2],
                ["運賃合計(円)", 4300],
                ["利用者負担合計(円)", 2000],
                ["助成額合計(円)", 2000],
                ["調整額(円)", -700],
                ["支払額(円)", 1300],
            ]
        )
    )
    assert statement_csv(session, statement) == expected


# --- cells ---------------------------------------------------------------------------------------------


def test_amounts_are_plain_integer_yen(session: Session) -> None:
    _, statement = one_line(session, meter_fare=12345, rider_share=1000, subsidy_amount=11345)
    row = first_line(statement_csv(session, statement))
    assert row[COLUMN["メーター運賃(円)"] : COLUMN["助成額(円)"] + 1] == ["12345", "1000", "11345"]


def test_boarding_time_is_shown_in_japan_time(session: Session) -> None:
    # 15:30 UTC on Oct 31 is 00:30 on Nov 1 in Japan: the day shown is the Japanese one.
    _, statement = one_line(session, boarded_at=datetime(2026, 10, 31, 15, 30, tzinfo=UTC))
    row = first_line(statement_csv(session, statement))
    assert row[COLUMN["乗車日時"]] == "2026/11/01 00:30"


def test_adjustment_without_boarding_time_has_an_empty_time_cell(session: Session) -> None:
    town = city(session, operators=1)
    statement = statement_with(
        session, town, town.fleets[0], [adjustment_line(-1200, "10月分過大請求の訂正")]
    )
    row = first_line(statement_csv(session, statement))
    assert row[COLUMN["区分"]] == "調整"
    assert row[COLUMN["乗車日時"]] == ""
    assert row[COLUMN["乗車番号"]] == ""
    assert row[COLUMN["助成額(円)"]] == "-1200"
    assert row[COLUMN["備考"]] == "10月分過大請求の訂正"


def test_empty_text_cells_are_written_as_nothing_not_as_an_empty_quoted_string(session: Session) -> None:
    town = city(session, operators=1)
    where = town.fleets[0]
    statement = statement_with(
        session,
        town,
        where,
        [ride_line(session, town, where, district_id=None, note=""), adjustment_line(-500, note="")],
    )
    ride_row, adjustment_row = raw_rows(statement_csv(session, statement))[1:3]
    # The ride: no district, no note.
    assert ride_row.split(b",")[COLUMN["地区"]] == b""
    assert ride_row.endswith(b",1000,")
    # The adjustment: no time, ride, program, district, vehicle or note.
    assert adjustment_row.endswith(",2,調整,,,,,,0,0,-500,".encode())
    assert b'""' not in ride_row + adjustment_row


def test_operator_name_with_commas_and_quotes_is_quoted_for_excel(session: Session) -> None:
    town, statement = one_line(session)
    town.fleets[0].operator.name = '尾花沢交通,有限会社 "本社"'
    session.flush()
    data = statement_csv(session, statement)
    assert '"尾花沢交通,有限会社 ""本社"""'.encode() in data
    assert first_line(data)[COLUMN["事業者名"]] == '尾花沢交通,有限会社 "本社"'


@pytest.mark.parametrize("written", ["1行目\n2行目", "1行目\r\n2行目"], ids=["lf", "crlf"])
def test_note_with_a_line_break_stays_in_one_cell_with_a_crlf(session: Session, written: str) -> None:
    town = city(session, operators=1)
    where = town.fleets[0]
    statement = statement_with(
        session, town, where, [ride_line(session, town, where, note=written), adjustment_line(-100)]
    )
    data = statement_csv(session, statement)
    rows = rows_of(data)
    # Every line end in the file is CRLF, inside a cell too, on both databases alike.
    assert rows[1][COLUMN["備考"]] == "1行目\r\n2行目"
    assert '"1行目\r\n2行目"'.encode() in data
    assert len(rows[1]) == len(LINE_HEADER)
    assert (rows[2][COLUMN["明細番号"]], rows[2][COLUMN["備考"]]) == ("2", "前月分の調整")


@pytest.mark.parametrize("trigger", FORMULA_TRIGGERS)
def test_note_that_excel_would_run_as_a_formula_gets_a_leading_apostrophe(
    session: Session, trigger: str
) -> None:
    _, statement = one_line(session, note=f'{trigger}HYPERLINK("http://example.invalid")')
    row = first_line(statement_csv(session, statement))
    assert row[COLUMN["備考"]] == f'\'{trigger}HYPERLINK("http://example.invalid")'


def test_names_that_excel_would_run_as_a_formula_get_a_leading_apostrophe(session: Session) -> None:
    town, statement = one_line(session)
    where = town.fleets[0]
    where.operator.name = "=尾花沢交通"
    where.vehicle.registration = "+山形500あ1234"
    program = session.get(Program, town.program.id)
    district = session.get(District, town.resident.district_id)
    assert program is not None
    assert district is not None
    program.name = "-高齢者"
    district.name = "@尾花沢"
    session.flush()
    row = first_line(statement_csv(session, statement))
    assert [row[COLUMN[name]] for name in ("事業者名", "制度", "地区", "車両")] == [
        "'=尾花沢交通",
        "'-高齢者",
        "'@尾花沢",
        "'+山形500あ1234",
    ]


def test_names_from_outside_the_city_are_still_shown_and_guarded(session: Session) -> None:
    # A line keeps the district and vehicle it was made with, even one another city's lists hold.
    town = city(session, operators=1)
    other = city(session, operators=1, code="062031", name="山形市")
    other.fleets[0].vehicle.registration = "=山形500あ9999"
    district = session.get(District, other.resident.district_id)
    assert district is not None
    district.name = "@宮沢"
    line = ride_line(
        session, town, town.fleets[0], district_id=district.id, vehicle_id=other.fleets[0].vehicle.id
    )
    statement = statement_with(session, town, town.fleets[0], [line])
    row = first_line(statement_csv(session, statement))
    assert (row[COLUMN["地区"]], row[COLUMN["車両"]]) == ("'@宮沢", "'=山形500あ9999")


def test_text_with_a_formula_sign_further_in_is_left_alone(session: Session) -> None:
    _, statement = one_line(session, note="運賃=2000円-割引")
    row = first_line(statement_csv(session, statement))
    assert row[COLUMN["備考"]] == "運賃=2000円-割引"


# --- a statement's CSV ------------------------------------------------------------------------------


def test_statement_csv_ends_with_a_blank_row_and_its_totals(session: Session) -> None:
    town = city(session, operators=1)
    where = town.fleets[0]
    lines = [ride_line(session, town, where, boarded_at=jst(2026, 9, day)) for day in (3, 4, 5)]
    statement = statement_with(session, town, where, [*lines, adjustment_line(-1200)])
    rows = rows_of(statement_csv(session, statement))
    assert [row[COLUMN["明細番号"]] for row in rows[1:5]] == ["1", "2", "3", "4"]
    assert rows[5] == []
    assert rows[6:] == [
        ["乗車件数", "3"],
        ["運賃合計(円)", "6000"],
        ["利用者負担合計(円)", "3000"],
        ["助成額合計(円)", "3000"],
        ["調整額(円)", "-1200"],
        ["支払額(円)", "1800"],
    ]


def test_statement_csv_lists_only_that_statements_lines_in_line_order(session: Session) -> None:
    town = city(session, operators=2)
    mine, theirs = town.fleets
    lines = [ride_line(session, town, mine, boarded_at=jst(2026, 9, day)) for day in (3, 4, 5)]
    statement = statement_with(session, town, mine, lines[::-1])
    statement_with(session, town, theirs, [ride_line(session, town, theirs)])
    rows = rows_of(statement_csv(session, statement))[1:4]
    assert [(row[COLUMN["明細番号"]], row[COLUMN["乗車日時"]]) for row in rows] == [
        ("1", "2026/09/05 10:00"),
        ("2", "2026/09/04 10:00"),
        ("3", "2026/09/03 10:00"),
    ]
    assert {row[COLUMN["事業者コード"]] for row in rows} == {"OP01"}


def test_write_statement_csv_returns_the_line_count_and_leaves_the_stream_open(session: Session) -> None:
    town = city(session, operators=1)
    where = town.fleets[0]
    lines = [ride_line(session, town, where, boarded_at=jst(2026, 9, day)) for day in (3, 4)]
    statement = statement_with(session, town, where, [*lines, adjustment_line(-200)])
    stream = io.BytesIO()
    written = documents.write_statement_csv(session, statement.id, stream)
    assert written == 3
    assert not stream.closed
    stream.write(b"")
    assert stream.getvalue() == statement_csv(session, statement)
    assert len(rows_of(stream.getvalue())) == 1 + 3 + 1 + 6


# --- the month's CSV --------------------------------------------------------------------------------


def two_operators_out_of_code_order(session: Session) -> City:
    """A city whose operator OP09 was made (and its statement written) before OP03; OP09 has two lines,
    OP03 three."""
    town = city(session, operators=0)
    town.fleets = [fleet(session, town.mun, "OP09"), fleet(session, town.mun, "OP03")]
    for where, days in zip(town.fleets, ((3, 4), (5, 6, 7)), strict=True):
        lines = [ride_line(session, town, where, boarded_at=jst(2026, 9, day)) for day in days]
        statement_with(session, town, where, lines)
    return town


def test_month_csv_has_one_row_per_line_with_the_operator_in_code_order_and_no_totals(
    session: Session,
) -> None:
    town = two_operators_out_of_code_order(session)
    town.fleets[0].operator.name = "銀山タクシー"
    session.flush()
    rows = rows_of(month_csv(session, town))
    assert rows[0] == list(LINE_HEADER)
    assert [(row[COLUMN["事業者コード"]], row[COLUMN["明細番号"]]) for row in rows[1:]] == [
        ("OP03", "1"),
        ("OP03", "2"),
        ("OP03", "3"),
        ("OP09", "1"),
        ("OP09", "2"),
    ]
    assert [row[COLUMN["事業者名"]] for row in rows[1:]] == ["尾花沢タクシー株式会社"] * 3 + [
        "銀山タクシー"
    ] * 2
    assert {row[COLUMN["精算書番号"]] for row in rows[4:]} == {"062120-202609-OP09"}
    assert all(len(row) == len(LINE_HEADER) and row[0] == "2026/09" for row in rows[1:])


def test_month_csv_leaves_out_other_months_and_other_cities(session: Session) -> None:
    town = city(session, operators=1)
    where = town.fleets[0]
    statement_with(session, town, where, [ride_line(session, town, where)])
    statement_with(
        session,
        town,
        where,
        [ride_line(session, town, where, boarded_at=jst(2026, 8, 3))],
        period=date(2026, 8, 1),
    )
    other = city(session, operators=1, code="062031", name="山形市")
    statement_with(session, other, other.fleets[0], [ride_line(session, other, other.fleets[0])])
    rows = rows_of(month_csv(session, town))
    assert [row[COLUMN["精算書番号"]] for row in rows[1:]] == ["062120-202609-OP01"]


def test_month_csv_of_a_month_without_statements_is_just_the_header(session: Session) -> None:
    town = city(session, operators=1)
    stream = io.BytesIO()
    written = documents.write_month_csv(session, municipality_id=town.mun.id, period=SEPTEMBER, stream=stream)
    assert (written, rows_of(stream.getvalue())) == (0, [list(LINE_HEADER)])


def test_write_month_csv_returns_the_line_count_and_leaves_the_stream_open(session: Session) -> None:
    town = two_operators_out_of_code_order(session)
    stream = io.BytesIO()
    written = documents.write_month_csv(session, municipality_id=town.mun.id, period=SEPTEMBER, stream=stream)
    assert written == 5
    assert not stream.closed
    stream.write(b"")
    assert len(rows_of(stream.getvalue())) == 1 + 5


def test_streamed_chunks_joined_are_the_written_files(session: Session) -> None:
    town = two_operators_out_of_code_order(session)
    statement = session.query(Statement).filter_by(operator_id=town.fleets[1].operator.id).one()
    month, single = io.BytesIO(), io.BytesIO()
    documents.write_month_csv(session, municipality_id=town.mun.id, period=SEPTEMBER, stream=month)
    documents.write_statement_csv(session, statement.id, single)
    assert month.getvalue() == month_csv(session, town)
    assert single.getvalue() == statement_csv(session, statement)
    # The month's lines of OP03 are the statement's lines, row for row.
    assert rows_of(month.getvalue())[1:4] == rows_of(single.getvalue())[1:4]


def test_month_csv_rows_of_a_larger_month_are_all_there_in_order(session: Session) -> None:
    town = city(session, operators=1)
    where = town.fleets[0]
    lines = [
        ride_line(session, town, where, boarded_at=jst(2026, 9, 1 + n % 28, 8 + n % 10)) for n in range(60)
    ]
    statement_with(session, town, where, lines)
    rows = rows_of(month_csv(session, town))
    assert [row[COLUMN["明細番号"]] for row in rows[1:]] == [str(n) for n in range(1, 61)]
    assert [row[COLUMN["乗車番号"]] for row in rows[1:]] == [str(line.ride_id) for line in lines]


def test_unknown_statement_is_refused_before_anything_is_written(session: Session) -> None:
    stream = io.BytesIO()
    with pytest.raises(NotFound):
        documents.statement_csv_chunks(session, 999_999)
    with pytest.raises(NotFound):
        documents.write_statement_csv(session, 999_999, stream)
    assert stream.getvalue() == b""
