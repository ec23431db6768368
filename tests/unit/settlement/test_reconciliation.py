"""Reconciling a statement against the operator's own ride log: reading the CSV, matching, explaining."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from settlement import documents, reconciliation
from settlement.reconciliation import (
    Fleet,
    LogRow,
    StatementRide,
    match_log,
    parse_boarded_at,
    parse_log,
    parse_yen,
    reconcile,
)
from tests import factories as f
from tests.unit.settlement.factories import City, city, jst, ride
from tests.unit.settlement.factories import Fleet as Company
from tests.unit.settlement.logs import SEPTEMBER, log_csv, statement_of, when
from voucher_api.models import AuditEntry, StatementLineKind
from voucher_api.services.errors import Conflict, DomainError, NotFound

# --- reading the log -----------------------------------------------------------------------------


def test_log_in_japanese_is_read_as_rides_in_japan_time() -> None:
    log = parse_log(log_csv([["2026/09/03 10:05", "山形500あ1234", "1,800", "900", "17"]]))
    assert log.rows == [
        LogRow(2, datetime(2026, 9, 3, 1, 5, tzinfo=UTC), "山形500あ1234", 1800, 900, 17),
    ]
    assert (log.errors, log.has_subsidy, log.encoding) == ([], True, "utf-8")


@pytest.mark.parametrize(
    ("encoding", "bom", "read_as"),
    [("utf-8", True, "utf-8-sig"), ("utf-8", False, "utf-8"), ("cp932", False, "cp932")],
)
def test_excel_encodings_are_all_read(encoding: str, bom: bool, read_as: str) -> None:
    data = log_csv([["2026/09/03 10:05", "３号車", "￥1,800", "", ""]], encoding=encoding, bom=bom)
    log = parse_log(data)
    assert (log.encoding, [(r.vehicle, r.meter_fare, r.subsidy) for r in log.rows]) == (
        read_as,
        [("３号車", 1800, None)],
    )


def test_shift_jis_yen_sign_arrives_as_a_backslash_and_is_still_yen() -> None:
    data = '乗車日時,車両番号,メーター料金\r\n2026/09/03 10:05,1234,"\\1,800"\r\n'.encode("cp932")
    assert parse_log(data).rows[0].meter_fare == 1800


def test_excel_unicode_text_is_tab_separated_utf16() -> None:
    text = "乗車日時\t車両番号\tメーター料金\r\n2026/09/03 10:05\t1234\t1800\r\n"
    log = parse_log(text.encode("utf-16"))
    assert (log.encoding, len(log.rows)) == ("utf-16", 1)


def test_a_row_the_csv_reader_cannot_read_is_reported_and_the_next_rows_are_still_read() -> None:
    huge = "x" * 200_000  # beyond the csv module's field limit
    data = log_csv(
        [["2026/09/03 10:05", huge, "1800"], ["2026/09/03 10:06", "1234", "1800"]],
        header=("乗車日時", "車両番号", "運賃"),
    )
    log = parse_log(data)
    assert ([row.row for row in log.rows], [(e.row, e.code) for e in log.errors]) == (
        [3],
        [(2, "reconciliation.row.unreadable")],
    )


def test_english_header_names_are_accepted() -> None:
    data = log_csv(
        [["2026-09-03 10:05", "1234", "1800", "900", "5"]],
        header=("Boarding time", "Vehicle", "Meter fare", "Subsidy", "Ride ID"),
    )
    assert parse_log(data).rows[0].ride_id == 5


def test_separate_date_and_time_columns_and_late_night_hours_of_a_daily_report() -> None:
    data = log_csv(
        [["2026/09/03", "25:30", "1234", "1800"]], header=("乗車日", "乗車時刻", "車番", "運賃(円)")
    )
    assert parse_log(data).rows[0].boarded_at == jst(2026, 9, 4, 1, 30)


def test_title_rows_blank_rows_and_total_rows_are_skipped() -> None:
    text = (
        "尾花沢タクシー 乗車記録 2026年9月\r\n"
        "\r\n"
        "乗車日時,車両番号,メーター料金,助成額\r\n"
        "2026/09/03 10:05,1234,1800,900\r\n"
        ",,,\r\n"
        "合計,,1800,900\r\n"
    )
    log = parse_log(text.encode())
    assert ([row.row for row in log.rows], log.errors, log.skipped) == ([4], [], 1)


def test_a_header_repeated_by_pasting_two_files_together_is_skipped() -> None:
    data = log_csv(
        [
            ["2026/09/03 10:05", "1234", "1800"],
            ["乗車日時", "車両番号", "メーター料金"],
            ["2026/09/04 10:05", "1234", "1800"],
        ],
        header=("乗車日時", "車両番号", "メーター料金"),
    )
    log = parse_log(data)
    assert ([row.row for row in log.rows], log.errors) == ([2, 4], [])


def test_unreadable_rows_are_reported_with_their_row_number_and_reason() -> None:
    data = log_csv(
        [
            ["2026/09/03 10:05", "1234", "1800", "900", ""],
            ["9月3日", "1234", "1800", "", ""],
            ["2026/09/03 10:05", "", "1800", "", ""],
            ["2026/09/03 10:05", "1234", "千八百", "", ""],
            ["2026/09/03 10:05", "1234", "1800", "-100", ""],
            ["2026/09/03 10:05", "1234", "1800", "", "R-17"],
            ["2026/02/30 10:05", "1234", "1800", "", ""],
            ["", "1234", "1800", "", ""],
        ]
    )
    log = parse_log(data)
    assert [row.row for row in log.rows] == [2]
    assert [(e.row, e.code.removeprefix("reconciliation.row.")) for e in log.errors] == [
        (3, "bad_boarded_at"),
        (4, "missing_vehicle"),
        (5, "bad_meter_fare"),
        (6, "bad_subsidy"),
        (7, "bad_ride_id"),
        (8, "bad_boarded_at"),
        (9, "missing_boarded_at"),
    ]
    assert log.errors[0].reason("ja") == "乗車日時「9月3日」を読み取れません(例: 2026/10/03 14:05)。"
    assert "9月3日" in log.errors[0].reason("en")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-10-03 14:05", jst(2026, 10, 3, 14, 5)),
        ("2026/10/03 14:05", jst(2026, 10, 3, 14, 5)),
        ("2026/10/3 9:05", jst(2026, 10, 3, 9, 5)),
        ("２０２６／１０／０３　１４：０５", jst(2026, 10, 3, 14, 5)),
        ("2026年10月3日 14時05分", jst(2026, 10, 3, 14, 5)),
        ("2026-10-03T14:05:00+09:00", jst(2026, 10, 3, 14, 5)),
        ("2026-10-03T05:05:00Z", jst(2026, 10, 3, 14, 5)),
        ("2026/10/03 24:10", jst(2026, 10, 4, 0, 10)),
    ],
)
def test_boarding_times_in_the_shapes_logs_write_them(text: str, expected: datetime) -> None:
    assert parse_boarded_at(text) == expected


@pytest.mark.parametrize("text", ["2026/10/03", "14:05", "2026/13/03 14:05", "2026/10/03 30:00", "昨日"])
def test_boarding_times_that_are_not_instants_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_boarded_at(text)


@pytest.mark.parametrize(
    ("text", "expected"), [("1,800", 1800), ("¥1,800", 1800), ("1800円", 1800), ("１８００", 1800), ("0", 0)]
)
def test_yen_as_logs_write_them(text: str, expected: int) -> None:
    assert parse_yen(text) == expected


@pytest.mark.parametrize("text", ["-100", "18.5", "1,800ドル", "", "99999999999"])
def test_yen_that_are_not_whole_yen_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_yen(text)


def _refusal(data: bytes) -> DomainError:
    with pytest.raises(DomainError) as caught:
        parse_log(data)
    return caught.value


def test_a_file_without_the_required_columns_says_which_are_missing() -> None:
    refusal = _refusal("日付,車両,金額\r\n2026/09/03,1234,1800\r\n".encode())
    assert (refusal.code, refusal.params["missing"]) == ("reconciliation.no_header", "乗車日時、メーター料金")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "reconciliation.empty"),
        ("\ufeff\r\n".encode(), "reconciliation.empty"),
        (b"PK\x03\x04\x14\x00\x06\x00", "reconciliation.not_csv"),
        (b"\x81\x00\xff\xfe\xa0\x80", "reconciliation.bad_encoding"),
    ],
)
def test_files_that_are_not_a_readable_csv_are_refused(data: bytes, code: str) -> None:
    assert _refusal(data).code == code


def test_too_many_rows_is_refused_as_too_large() -> None:
    data = log_csv([["2026/09/03 10:05", "1234", "1800"]] * 4, header=("乗車日時", "車両番号", "運賃"))
    with pytest.raises(DomainError) as caught:
        parse_log(data, max_rows=3)
    assert (caught.value.code, caught.value.status) == ("reconciliation.too_many_rows", 413)


def test_too_many_bytes_is_refused_as_too_large() -> None:
    refusal = _refusal(b"x" * (reconciliation.MAX_LOG_BYTES + 1))
    assert (refusal.code, refusal.status) == ("reconciliation.too_large", 413)


_CELL = st.one_of(
    st.sampled_from(["2026/09/03 10:05", "1234", "1,800", "", "x", "2026/02/30 10:00", "-1", "12"]),
    st.text(alphabet='0123456789/:, 年月日号車あ-"', max_size=12),
)


@settings(max_examples=150)
@given(st.lists(st.lists(_CELL, min_size=0, max_size=6), max_size=25))
def test_every_data_row_is_either_read_or_reported_never_both(rows: list[list[str]]) -> None:
    log = parse_log(log_csv(rows))
    read = [row.row for row in log.rows]
    reported = [error.row for error in log.errors]
    assert not set(read) & set(reported)
    written = [row for row in rows if any(cell.strip() for cell in row)]  # blank rows are passed over
    assert len(read) + len(reported) + log.skipped == len(written)
    assert all(2 <= number <= len(rows) + 1 for number in read + reported)


# --- matching (pure) -----------------------------------------------------------------------------

T0 = datetime(2026, 9, 3, 1, 0, tzinfo=UTC)


def _line(line_no: int, vehicle_id: int, minute: float, *, ride_id: int | None = None) -> StatementRide:
    return StatementRide(
        line_id=1000 + line_no,
        line_no=line_no,
        kind="ride",
        ride_id=ride_id or 500 + line_no,
        boarded_at=T0 + timedelta(minutes=minute),
        vehicle_id=vehicle_id,
        vehicle=f"v{vehicle_id}",
        meter_fare=1800,
        subsidy=900,
    )


def _row(row: int, minute: float, *, ride_id: int | None = None) -> LogRow:
    return LogRow(row, T0 + timedelta(minutes=minute), "v", 1800, 900, ride_id)


def test_nearest_pairs_are_taken_first_and_each_line_is_matched_once() -> None:
    lines = [_line(1, 7, 0), _line(2, 7, 2), _line(3, 7, 2.5)]
    rows = [_row(2, 1), _row(3, 2), _row(4, 2)]
    matching = match_log(rows, [7, 7, 7], lines)
    assert {index: line.line_no for index, (line, _by) in matching.matched.items()} == {0: 1, 1: 2, 2: 3}


def test_a_ride_number_is_authoritative_even_far_from_the_time() -> None:
    lines = [_line(1, 7, 0), _line(2, 7, 90)]
    matching = match_log([_row(2, 0, ride_id=502)], [7], lines)
    assert [(line.line_no, by) for line, by in matching.matched.values()] == [(2, "ride_id")]


def test_rows_outside_the_tolerance_or_of_another_vehicle_do_not_match() -> None:
    lines = [_line(1, 7, 0)]
    rows = [_row(2, 4), _row(3, 0)]
    matching = match_log(rows, [7, 8], lines, tolerance=timedelta(minutes=3))
    assert matching.matched == {}


_LINES = st.lists(
    st.tuples(st.integers(1, 3), st.integers(0, 40)), max_size=12
)  # (vehicle, minute) of each line
_ROWS = st.lists(
    st.tuples(st.sampled_from([1, 2, 3, None]), st.integers(0, 40), st.one_of(st.none(), st.integers(0, 14))),
    max_size=12,
)  # (vehicle or unknown, minute, index of the line whose ride number it carries, or a stranger's)


@settings(max_examples=300)
@given(_LINES, _ROWS, st.integers(0, 5))
def test_every_row_and_every_line_ends_up_in_exactly_one_group(
    line_specs: list[tuple[int, int]], row_specs: list[tuple[int | None, int, int | None]], minutes: int
) -> None:
    tolerance = timedelta(minutes=minutes)
    lines = [_line(n + 1, vehicle, minute) for n, (vehicle, minute) in enumerate(line_specs)]
    rows = [
        _row(n + 2, minute, ride_id=None if ref is None else 501 + ref)
        for n, (_vehicle, minute, ref) in enumerate(row_specs)
    ]
    vehicle_of = [vehicle for vehicle, _minute, _ref in row_specs]
    matching = match_log(rows, vehicle_of, lines, tolerance=tolerance)

    matched_lines = [line.line_id for line, _by in matching.matched.values()]
    assert len(matched_lines) == len(set(matched_lines)) == len(matching.matched_line_ids)
    assert set(matching.matched) <= set(range(len(rows)))  # real rows, each matched at most once (a dict)
    assert set(matching.matched_line_ids) == set(matched_lines) <= {line.line_id for line in lines}
    extra = [index for index in range(len(rows)) if index not in matching.matched]
    missing = [line for line in lines if line.line_id not in matching.matched_line_ids]
    for index, (line, by) in matching.matched.items():
        row = rows[index]
        if by == "ride_id":
            assert row.ride_id == line.ride_id
        else:
            assert row.ride_id is None
            assert vehicle_of[index] == line.vehicle_id
            assert line.boarded_at is not None
            assert abs(row.boarded_at - line.boarded_at) <= tolerance
    # Nothing left over could have been paired: no free row and free line of one car within tolerance.
    for index in extra:
        row = rows[index]
        if row.ride_id is None and vehicle_of[index] is not None:
            assert not any(
                line.vehicle_id == vehicle_of[index]
                and line.boarded_at is not None
                and abs(row.boarded_at - line.boarded_at) <= tolerance
                and not any(r.ride_id == line.ride_id for r in rows)
                for line in missing
            )


def test_fleet_knows_a_vehicle_by_plate_label_or_plate_serial() -> None:
    fleet = Fleet(
        [(1, "山形 500 あ 12-34", "3号車"), (2, "山形 500 い 56-78", ""), (3, "山形 501 う 56-78", "")]
    )
    assert [
        fleet.resolve(text)
        for text in ("山形500あ1234", "山形 500 あ 12‐34", "3号車", "3", "1234", "5678", "9")
    ] == [1, 1, 1, 1, 1, None, None]


# --- reconciling a statement (database) ----------------------------------------------------------


def _september(session: Session) -> tuple[City, Company]:
    town = city(session, operators=2)
    return town, town.fleets[0]


def _reconcile(
    session: Session, town: City, statement_id: int, data: bytes, *, missing_limit: int = 5_000
) -> reconciliation.Reconciliation:
    return reconcile(
        session,
        statement_id=statement_id,
        municipality_id=town.mun.id,
        log=parse_log(data),
        missing_limit=missing_limit,
    )


def test_matched_missing_and_extra_rides_with_their_amounts(session: Session) -> None:
    town, op = _september(session)
    plate = op.vehicle.registration
    a = ride(session, town, op, boarded_at=jst(2026, 9, 3, 10, 0), fare=1800)  # subsidy 900
    b = ride(session, town, op, boarded_at=jst(2026, 9, 4, 14, 30), fare=2600)  # subsidy 1000
    c = ride(session, town, op, boarded_at=jst(2026, 9, 5, 9, 0), fare=1200)  # subsidy 600, not in the log
    statement = statement_of(session, town, op, [a, b, c], adjustments=[500])
    data = log_csv(
        [
            [when(a.boarded_at), plate, "1,800", "900", str(a.id)],
            [when(b.boarded_at + timedelta(minutes=2)), plate, "2,800", "1,000", ""],
            ["2026/09/06 11:00", plate, "3,000", "1,000", ""],
        ]
    )
    result = _reconcile(session, town, statement.id, data)
    assert [(m.row.row, m.line.ride_id, m.matched_by) for m in result.matched] == [
        (2, a.id, "ride_id"),
        (3, b.id, "vehicle_time"),
    ]
    assert result.matched[1].differences(result.tolerance) == ["meter_fare"]
    assert [line.ride_id for line in result.missing] == [c.id]
    assert [(x.row.row, x.reason) for x in result.extra] == [(4, "not_found")]
    totals = result.totals
    assert (totals.matched, totals.missing, totals.extra, totals.differing) == (2, 1, 1, 1)
    assert (totals.our_subsidy, totals.their_subsidy, totals.difference) == (2500, 2900, 400)
    assert (totals.our_meter_fare, totals.their_meter_fare) == (5600, 7600)
    assert totals.our_subsidy == statement.subsidy_total  # the adjustment line is not a ride


def test_every_ride_kind_is_compared_and_adjustments_are_not(session: Session) -> None:
    town, op = _september(session)
    made = [ride(session, town, op, boarded_at=jst(2026, 9, day, 10, 0), fare=1800) for day in (1, 2, 3, 4)]
    kinds = [
        StatementLineKind.RIDE,
        StatementLineKind.PRIOR_PERIOD,
        StatementLineKind.FARELESS,
        StatementLineKind.OFFLINE_CONFLICT,
    ]
    statement = statement_of(session, town, op, list(zip(made, kinds, strict=True)), adjustments=[-300])
    result = _reconcile(session, town, statement.id, log_csv([]))
    assert sorted(line.kind for line in result.missing) == sorted(kind.value for kind in kinds)


def test_extra_rows_say_why_the_statement_does_not_pay_them(session: Session) -> None:
    town, op = _september(session)
    plate = op.vehicle.registration
    paid = ride(session, town, op, boarded_at=jst(2026, 9, 3, 10, 0))
    voided = ride(session, town, op, boarded_at=jst(2026, 9, 4, 10, 0), voided=True)
    late = ride(session, town, op, boarded_at=jst(2026, 9, 5, 10, 0), fare=None)  # no fare yet
    august = ride(session, town, op, boarded_at=jst(2026, 8, 20, 10, 0))
    statement_of(session, town, op, [august], period=SEPTEMBER.replace(month=8))
    statement = statement_of(session, town, op, [paid])
    data = log_csv(
        [
            [when(paid.boarded_at), plate, "2000", "", ""],
            [when(paid.boarded_at), plate, "2000", "", ""],  # the same ride twice in the log
            [when(voided.boarded_at), plate, "2000", "", ""],
            ["", plate, "2000", "", str(late.id)],  # unreadable: no time
            [when(late.boarded_at), plate, "2000", "", str(late.id)],
            [when(august.boarded_at), plate, "2000", "", str(august.id)],
            [when(august.boarded_at), plate, "2000", "", str(august.id)],
            ["2026/09/07 10:00", "宮城 300 か 99-99", "2000", "", ""],
            ["2026/09/08 10:00", plate, "2000", "", "99999999"],
        ]
    )
    result = _reconcile(session, town, statement.id, data)
    assert [(x.row.row, x.reason, x.ride_id, x.other_row) for x in result.extra] == [
        (3, "already_matched", paid.id, 2),
        (4, "voided", voided.id, None),
        (6, "not_on_a_statement", late.id, None),
        (7, "other_statement", august.id, None),
        (8, "duplicate_in_log", august.id, 7),
        (9, "unknown_vehicle", None, None),
        (10, "not_found", 99999999, None),
    ]
    other = result.extra[3]
    assert other.note() == f"この乗車は別の精算書({other.statement_number}、2026-08)に計上されています。"
    assert [e.row for e in result.errors] == [5]


def test_a_ride_number_on_the_log_wins_over_a_nearer_ride_of_the_same_car(session: Session) -> None:
    town, op = _september(session)
    first = ride(session, town, op, boarded_at=jst(2026, 9, 3, 10, 0))
    second = ride(session, town, op, boarded_at=jst(2026, 9, 3, 10, 2))
    statement = statement_of(session, town, op, [first, second])
    plate = op.vehicle.registration
    data = log_csv(
        [
            [when(first.boarded_at), plate, "2000", "", str(second.id)],
            [when(first.boarded_at), plate, "2000", "", ""],
        ]
    )
    result = _reconcile(session, town, statement.id, data)
    assert [(m.row.row, m.line.ride_id) for m in result.matched] == [(3, first.id), (2, second.id)]


def test_a_statement_of_another_operator_or_city_is_not_found(session: Session) -> None:
    town, op = _september(session)
    statement = statement_of(session, town, op, [ride(session, town, op, boarded_at=jst(2026, 9, 3))])
    log = parse_log(log_csv([]))
    other_city = f.municipality(session, code="062138", name="大石田町")
    with pytest.raises(NotFound):
        reconcile(session, statement_id=statement.id, municipality_id=other_city.id, log=log)
    with pytest.raises(NotFound):
        reconcile(
            session,
            statement_id=statement.id,
            municipality_id=town.mun.id,
            operator_id=town.fleets[1].operator.id,
            log=log,
        )


def test_a_long_missing_list_is_truncated_but_counted_and_streamed_in_full(session: Session) -> None:
    town, op = _september(session)
    made = [ride(session, town, op, boarded_at=jst(2026, 9, 3, 8 + n, 0)) for n in range(6)]
    statement = statement_of(session, town, op, made)
    result = _reconcile(session, town, statement.id, log_csv([]), missing_limit=2)
    streamed = list(reconciliation.missing_lines(session, result))
    assert (len(result.missing), result.missing_truncated, result.totals.missing) == (2, True, 6)
    assert [line.ride_id for line in streamed] == [r.id for r in made]
    assert result.totals.missing_subsidy == statement.subsidy_total


def test_a_draft_rebuilt_since_the_comparison_is_a_conflict(session: Session) -> None:
    town, op = _september(session)
    statement = statement_of(session, town, op, [ride(session, town, op, boarded_at=jst(2026, 9, 3))])
    result = _reconcile(session, town, statement.id, log_csv([]))
    statement.generated_at = statement.generated_at + timedelta(minutes=1)
    session.flush()
    with pytest.raises(Conflict):
        list(reconciliation.missing_lines(session, result))


def test_reconciling_writes_nothing(session: Session) -> None:
    town, op = _september(session)
    statement = statement_of(session, town, op, [ride(session, town, op, boarded_at=jst(2026, 9, 3))])
    before = (session.scalar(select(func.count()).select_from(AuditEntry)), statement.subsidy_total)
    _reconcile(session, town, statement.id, log_csv([["2026/09/03 10:00", op.vehicle.registration, "1"]]))
    assert not session.new
    assert not session.dirty
    assert (session.scalar(select(func.count()).select_from(AuditEntry)), statement.subsidy_total) == before


def test_our_own_statement_csv_sent_back_matches_every_ride(session: Session) -> None:
    town, op = _september(session)
    made = [
        ride(session, town, op, boarded_at=jst(2026, 9, day, 10, 0), fare=1500 + day) for day in (2, 3, 9)
    ]
    statement = statement_of(session, town, op, made, adjustments=[700])
    exported = b"".join(documents.statement_csv_chunks(session, statement.id))
    result = _reconcile(session, town, statement.id, exported)
    assert (result.totals.matched, result.totals.missing, result.totals.extra, result.errors) == (3, 0, 0, [])
    assert result.totals.difference == 0


def test_the_result_as_csv_lists_every_group_and_the_totals(session: Session) -> None:
    town, op = _september(session)
    a = ride(session, town, op, boarded_at=jst(2026, 9, 3, 10, 0))
    b = ride(session, town, op, boarded_at=jst(2026, 9, 4, 10, 0))
    statement = statement_of(session, town, op, [a, b])
    plate = op.vehicle.registration
    data = log_csv(
        [
            [when(a.boarded_at), plate, "2000", "1000", ""],
            ["2026/09/09 10:00", plate, "=1+1", "", ""],
            ["2026/09/10 10:00", plate, "900", "450", ""],
        ]
    )
    result = _reconcile(session, town, statement.id, data)
    text = reconciliation.reconciliation_csv(result, reconciliation.missing_lines(session, result)).decode(
        "utf-8"
    )
    rows = text.removeprefix("\ufeff").split("\r\n")
    assert text.startswith("\ufeff結果,ログ行,")
    assert [row.split(",")[0] for row in rows[1:5]] == ["一致", "ログになし", "精算書になし", "読めない行"]
    assert "助成額差額(ログ-精算書),-550" in rows
