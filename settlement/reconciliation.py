"""Reconcile one statement against the operator's own ride log (CSV): matched, missing and extra rides.

A taxi company keeps its own log of voucher rides (from its dispatch system, its meters or a clerk's
spreadsheet). Before it accepts or disputes a statement it wants to know which of its rides we pay,
which we do not, and where the amounts differ. This module reads that log and compares it with the
statement's ride lines (kinds ride, prior_period, fareless, offline_conflict; adjustments are not rides).

The log format
--------------

- A CSV file, UTF-8 with or without a byte-order mark, or Shift_JIS (cp932, what Excel in Japan saves as
  "CSV (コンマ区切り)"); UTF-16 with a byte-order mark (Excel's "Unicode テキスト") is read too. A charset
  declared by the uploader is tried first. Commas separate fields; a file whose first rows have more tabs
  than commas is read as tab-separated.
- The header row is the first of the first ten rows that names the required columns (title rows above
  it are skipped). Column names are compared after NFKC normalisation, ignoring case, spaces, ``_``,
  ``-`` and a unit suffix such as ``(円)``. Japanese names, with accepted aliases:

  - boarding time: 乗車日時 (日時), or two columns 乗車日 (日付) and 乗車時刻 (時刻);
    English: boarded_at, boarding time, or date and time;
  - vehicle: 車両番号 (車両, 車番, 号車, 車号, 車両コード, ナンバー); English: vehicle, vehicle no,
    registration;
  - meter fare: メーター料金 (メーター運賃, 運賃, 料金); English: meter fare, fare;
  - subsidy, optional: 助成額 (助成金額, 補助額, 利用券額); English: subsidy;
  - ride number, optional: 乗車番号 (乗車ID, 記録番号); English: ride id, ride ref.

  Other columns are ignored, so our own statement CSV (乗車日時, 乗車番号, 車両, メーター運賃(円),
  助成額(円)) can be sent back as it is; its adjustment rows (区分 調整) and total rows are skipped.
- Boarding time is Japan time: ``2026-10-03 14:05``, ``2026/10/03 14:05``, ``2026/10/3 14:05:30``,
  ``2026年10月3日 14時05分``, or ISO 8601 with an offset (``2026-10-03T14:05:00+09:00``). Hours 24–29
  are read as the early hours of the next day, as taxi daily reports (日報) write them.
- Vehicle: the number plate as we store it (``山形 500 あ 12-34``; spaces and hyphens do not matter),
  the vehicle's label (``3号車``), or the plate's serial number alone (``1234``) when it is unique within
  the operator's fleet.
- Yen: whole yen; ``1,800``, ``¥1,800``, ``1800円`` and full-width digits are accepted. An empty
  助成額 cell means "not claimed" (it counts as 0 in the sums).
- Ride number: our ride id as printed in the statement CSV's 乗車番号 column.
- Blank rows, repeats of the header row (files pasted together), and rows whose first cell is
  合計 / 小計 / 計 / Total, are skipped. Every other row that cannot be read is reported with its row
  number (the Excel row: the file's first row is 1) and a reason, and takes no part in the comparison.
- At most ``MAX_LOG_BYTES`` (5 MiB) and ``MAX_LOG_ROWS`` rows.

Matching
--------

1. A row with a ride number is matched to the statement line of that ride, and only to it: a number is
   authoritative, a row whose number is not on the statement is *extra* (even if a ride of the same car
   at the same time is).
2. Every other row is matched by vehicle and boarding time: the candidates are the lines of the same
   vehicle boarded within ``tolerance`` (±3 minutes by default). Pairs are taken nearest first (ties by
   line number, then row number), and a line and a row are each matched at most once.

Lines left over are *missing* (we pay them, the log does not have them); rows left over are *extra* (the
log claims them, the statement does not pay them). For an extra row the reason is looked up where it is
cheap: the ride is voided, on another statement (with its number and month), on no statement yet, already
matched to another row of the log, or unknown to us; a vehicle we do not know is said so.

A shared ride (several entitled riders in one car) is one line per rider; a log that has one row for the
whole trip matches one of them and leaves the others missing, which is the difference to talk about.

Memory
------

The log is held in memory (it is capped). The statement's lines are streamed in line order, twice (once to
match, once to list what is missing), so a statement of 200,000 lines never sits in memory: what is kept
is proportional to the log (each row keeps at most ``MAX_CANDIDATES_PER_ROW`` candidate lines). The JSON
result lists at most ``missing_limit`` missing lines (the totals count them all); ``missing_lines`` streams
every one of them, for the CSV. Explaining extra rows reads the operator's rides in index range scans of
at most ``LOOKUP_SPAN`` around them. A draft statement rebuilt by a settlement run while it is being
compared raises ``reconciliation.statement_changed`` instead of mixing two versions.

Reconciliation writes nothing; the API records one audit entry saying who ran it on which statement.
"""

from __future__ import annotations

import codecs
import csv
import heapq
import io
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from settlement.exports.csv_export import BOM, _jst_text, cell_text
from voucher_api.clock import JST
from voucher_api.models import Ride, RideStatus, Statement, StatementLine, StatementLineKind, Vehicle
from voucher_api.services.errors import Conflict, DomainError, NotFound, Refused, message_for

MAX_LOG_BYTES: Final = 5 * 1024 * 1024
MAX_LOG_ROWS: Final = 50_000
MAX_YEN: Final = 10_000_000
MAX_RIDE_ID: Final = 2**53
DEFAULT_TOLERANCE: Final = timedelta(minutes=3)
MAX_TOLERANCE: Final = timedelta(minutes=30)
HEADER_SEARCH_ROWS: Final = 10
MISSING_LIMIT: Final = 5_000
MAX_CANDIDATES_PER_ROW: Final = 16
LINE_FETCH_SIZE: Final = 2_000
LOOKUP_CHUNK: Final = 500
LOOKUP_SPAN: Final = timedelta(hours=6)

RIDE_LINE_KINDS: Final = (
    StatementLineKind.RIDE,
    StatementLineKind.PRIOR_PERIOD,
    StatementLineKind.FARELESS,
    StatementLineKind.OFFLINE_CONFLICT,
)

# --- the log -------------------------------------------------------------------------------------


def _name_key(text: str) -> str:
    """A header cell reduced to what identifies it: NFKC, lower case, no spaces, ``_``, ``-`` or unit."""
    key = unicodedata.normalize("NFKC", text).strip().lower()
    key = re.sub(r"[\s_\-]+", "", key)
    key = re.sub(r"[(\[][^()\[\]]*[)\]]$", "", key)  # a unit or note: 助成額(円), 乗車日時[JST]
    return key.removesuffix("円") if len(key) > 1 else key


# Header names per column, compared by _name_key (so "Boarding time" and "boarding_time" are one name).
_ALIASES: Final[dict[str, str]] = {
    "boarded_at": "乗車日時|日時|乗車日時刻|boarded at|boarding time|boarding datetime|datetime",
    "board_date": "乗車日|日付|年月日|乗車年月日|date|boarding date",
    "board_time": "乗車時刻|時刻|乗車時間|time",
    "vehicle": "車両番号|車両|車番|号車|車号|車両No|車両No.|車両コード|ナンバー"
    "|vehicle|vehicle no|vehicle no.|vehicle number|vehicle code|registration",
    "meter_fare": "メーター料金|メーター運賃|メーター|運賃|料金|運賃額|meter fare|fare",
    "subsidy": "助成額|助成金額|助成|補助額|補助金額|利用券額|利用券|subsidy|subsidy amount",
    "ride_ref": "乗車番号|乗車ID|乗車No|乗車No.|記録番号|ride id|ride ref|ride reference|ride number",
    "kind": "区分|kind",
}
_COLUMN_OF: Final[dict[str, str]] = {
    _name_key(alias): column for column, aliases in _ALIASES.items() for alias in aliases.split("|")
}
_REQUIRED_LABELS: Final = {"boarded_at": "乗車日時", "vehicle": "車両番号", "meter_fare": "メーター料金"}

# First cells of rows that sum up the rows above them (and of our own statement CSV's total block).
_TOTAL_LABELS: Final = frozenset(
    _name_key(label)
    for label in (
        "合計",
        "小計",
        "総計",
        "計",
        "total",
        "subtotal",
        "乗車件数",
        "運賃合計(円)",
        "利用者負担合計(円)",
        "助成額合計(円)",
        "調整額(円)",
        "支払額(円)",
    )
)
_ADJUSTMENT_KINDS: Final = frozenset({"調整", "adjustment"})

_CHARSETS: Final = {
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "utf-8-sig": "utf-8-sig",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "cp932": "cp932",
    "windows-31j": "cp932",
    "ms932": "cp932",
}


@dataclass(frozen=True, slots=True)
class LogRow:
    """One ride of the operator's log, read: the boarding instant is aware UTC."""

    row: int
    boarded_at: datetime
    vehicle: str
    meter_fare: int
    subsidy: int | None = None
    ride_id: int | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    """A row that could not be read; `code` names the reason, `params` fill its message."""

    row: int
    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def reason(self, lang: str = "ja") -> str:
        return message_for(self.code, lang, **self.params)


@dataclass(frozen=True, slots=True)
class OperatorLog:
    """The log as read: its rides, the rows that could not be read, and what the file was."""

    rows: list[LogRow]
    errors: list[RowError]
    has_subsidy: bool
    encoding: str
    skipped: int = 0  # total, adjustment and repeated header rows (blank rows are not counted)


class _BadCell(ValueError):
    def __init__(self, code: str, value: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.value = value[:40]


def _decode(data: bytes, charset: str | None) -> tuple[str, str]:
    if data.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]
    else:
        declared = _CHARSETS.get((charset or "").strip().lower())
        candidates = [name for name in (declared, "utf-8", "cp932") if name is not None]
    for encoding in dict.fromkeys(candidates):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise Refused("reconciliation.bad_encoding")


def _cell(cells: Sequence[str], index: int | None) -> str:
    if index is None or index >= len(cells):
        return ""
    return cells[index].strip()


def _header_columns(cells: Sequence[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for index, cell in enumerate(cells):
        column = _COLUMN_OF.get(_name_key(cell))
        if column is not None and column not in columns:
            columns[column] = index
    return columns


def _missing_columns(columns: dict[str, int]) -> list[str]:
    missing = [
        label
        for column, label in _REQUIRED_LABELS.items()
        if column not in columns
        and not (column == "boarded_at" and {"board_date", "board_time"} <= set(columns))
    ]
    return missing


_DATE_TIME: Final = re.compile(
    r"^(?P<y>\d{4})[-/.年](?P<mo>\d{1,2})[-/.月](?P<d>\d{1,2})日?"
    r"(?:\s*|T)(?P<h>\d{1,2})[:時](?P<mi>\d{1,2})(?:分)?(?:[:](?P<s>\d{1,2})(?:\.\d+)?|(?P<s2>\d{1,2})秒)?"
    r"\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?$"
)


def parse_boarded_at(text: str) -> datetime:
    """A boarding time as the log writes it (Japan time unless it carries an offset), as aware UTC.

    Raises ValueError when it is not one of the documented shapes or not a real instant.
    """
    match = _DATE_TIME.match(unicodedata.normalize("NFKC", text).strip())
    if match is None:
        raise ValueError(f"not a boarding time: {text!r}")
    hour = int(match["h"])
    second = int(match["s"] or match["s2"] or 0)
    if hour > 29:
        raise ValueError(f"hour out of range: {text!r}")
    zone = JST if match["tz"] is None else _offset(match["tz"])
    local = datetime(
        int(match["y"]), int(match["mo"]), int(match["d"]), hour % 24, int(match["mi"]), second, tzinfo=zone
    )
    if hour >= 24:  # 25:30 on the 3rd is 01:30 on the 4th
        local += timedelta(days=1)
    return local.astimezone(UTC)


def _offset(tz: str) -> timezone | ZoneInfo:
    if tz == "Z":
        return UTC
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def parse_yen(text: str) -> int:
    """Whole yen as a log writes them (``1,800``, ``¥1,800``, ``1800円``). Raises ValueError."""
    value = unicodedata.normalize("NFKC", text).strip()
    # In Shift_JIS the yen sign is the byte of the backslash; it arrives as one.
    value = re.sub(r"[\s,¥\\]", "", value).removesuffix("円")
    match = re.fullmatch(r"(\d{1,9})(?:\.0+)?", value)
    if match is None or int(match[1]) > MAX_YEN:
        raise ValueError(f"not a whole number of yen: {text!r}")
    return int(match[1])


def _ride_ref(text: str) -> int:
    value = unicodedata.normalize("NFKC", text).strip()
    if not re.fullmatch(r"\d{1,16}", value) or not 0 < int(value) <= MAX_RIDE_ID:
        raise ValueError(text)
    return int(value)


def _parse_row(row: int, cells: Sequence[str], columns: dict[str, int]) -> LogRow:
    if "boarded_at" in columns:
        when = _cell(cells, columns["boarded_at"])
    else:
        day, clock_time = _cell(cells, columns["board_date"]), _cell(cells, columns["board_time"])
        when = f"{day} {clock_time}" if day and clock_time else ""
    if not when:
        raise _BadCell("reconciliation.row.missing_boarded_at")
    try:
        boarded_at = parse_boarded_at(when)
    except ValueError:
        raise _BadCell("reconciliation.row.bad_boarded_at", when) from None
    vehicle = _cell(cells, columns["vehicle"])
    if not vehicle:
        raise _BadCell("reconciliation.row.missing_vehicle")
    fare_text = _cell(cells, columns["meter_fare"])
    if not fare_text:
        raise _BadCell("reconciliation.row.missing_meter_fare")
    try:
        fare = parse_yen(fare_text)
    except ValueError:
        raise _BadCell("reconciliation.row.bad_meter_fare", fare_text) from None
    subsidy: int | None = None
    subsidy_text = _cell(cells, columns.get("subsidy"))
    if subsidy_text:
        try:
            subsidy = parse_yen(subsidy_text)
        except ValueError:
            raise _BadCell("reconciliation.row.bad_subsidy", subsidy_text) from None
    ride_id: int | None = None
    ref_text = _cell(cells, columns.get("ride_ref"))
    if ref_text:
        try:
            ride_id = _ride_ref(ref_text)
        except ValueError:
            raise _BadCell("reconciliation.row.bad_ride_id", ref_text) from None
    return LogRow(row, boarded_at, vehicle[:40], fare, subsidy, ride_id)


def _is_skipped(cells: Sequence[str], columns: dict[str, int]) -> bool:
    first = next((cell for cell in cells if cell.strip()), "")
    if _name_key(first) in _TOTAL_LABELS:
        return True
    return _name_key(_cell(cells, columns.get("kind"))) in _ADJUSTMENT_KINDS


def parse_log(data: bytes, *, charset: str | None = None, max_rows: int = MAX_LOG_ROWS) -> OperatorLog:
    """Read an operator's ride log (the format is in the module's docstring).

    Rows that cannot be read are returned as errors with their row number, never raised. The file as a
    whole is refused with: reconciliation.too_large (413) above MAX_LOG_BYTES, reconciliation.empty,
    reconciliation.not_csv (an Excel workbook), reconciliation.bad_encoding, reconciliation.no_header
    (the required columns are not named in the first rows), reconciliation.too_many_rows (413).
    """
    if len(data) > MAX_LOG_BYTES:
        raise DomainError("reconciliation.too_large", status=413, max_mib=MAX_LOG_BYTES // (1024 * 1024))
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):
        raise Refused("reconciliation.not_csv")
    text, encoding = _decode(data, charset)
    if not text.strip():
        raise Refused("reconciliation.empty")
    head = text.splitlines()[:HEADER_SEARCH_ROWS]
    delimiter = (
        "\t" if sum(line.count("\t") for line in head) > sum(line.count(",") for line in head) else ","
    )
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)

    columns: dict[str, int] | None = None
    best: dict[str, int] = {}
    rows: list[LogRow] = []
    errors: list[RowError] = []
    skipped = data_rows = row_no = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error:
            row_no += 1
            if columns is not None:
                errors.append(RowError(row_no, "reconciliation.row.unreadable"))
            continue
        row_no += 1
        if columns is None:
            found = _header_columns(cells)
            if not _missing_columns(found):
                columns = found
                continue
            if len(found) > len(best):
                best = found
            if row_no >= HEADER_SEARCH_ROWS:
                break
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if _is_skipped(cells, columns) or _header_columns(cells) == columns:  # totals, a repeated header
            skipped += 1
            continue
        data_rows += 1
        if data_rows > max_rows:
            raise DomainError("reconciliation.too_many_rows", status=413, max_rows=max_rows)
        try:
            rows.append(_parse_row(row_no, cells, columns))
        except _BadCell as bad:
            errors.append(RowError(row_no, bad.code, {"value": bad.value} if bad.value else {}))
    if columns is None:
        raise Refused("reconciliation.no_header", missing="、".join(_missing_columns(best)))
    return OperatorLog(rows, errors, "subsidy" in columns, encoding, skipped)


# --- the statement's side ------------------------------------------------------------------------


class StatementRide(NamedTuple):
    """One ride line of the statement, as reconciliation reads it (a tuple: 200,000 are made per pass)."""

    line_id: int
    line_no: int
    kind: str
    ride_id: int
    boarded_at: datetime | None
    vehicle_id: int | None
    vehicle: str
    meter_fare: int
    subsidy: int


def _vehicle_key(text: str) -> str:
    key = unicodedata.normalize("NFKC", text).lower()
    key = re.sub(r"[\s\-‐‑–—−・･.]+", "", key)
    return key.removesuffix("号車").removesuffix("号")


class Fleet:
    """Resolves a vehicle as a log writes it to one of the operator's vehicles."""

    def __init__(self, vehicles: Iterable[tuple[int, str, str]]) -> None:
        self._by: list[dict[str, int]] = [{}, {}, {}]  # registration, label, plate serial
        ambiguous: list[set[str]] = [set(), set(), set()]
        for vehicle_id, registration, label in vehicles:
            plate = _vehicle_key(registration)
            serial = re.search(r"(\d+)$", plate)
            keys = (plate, _vehicle_key(label) if label else "", serial[1] if serial else "")
            for index, key in enumerate(keys):
                if not key:
                    continue
                if key in self._by[index] and self._by[index][key] != vehicle_id:
                    ambiguous[index].add(key)
                self._by[index][key] = vehicle_id
        for index, keys_seen in enumerate(ambiguous):
            for key in keys_seen:
                del self._by[index][key]

    def resolve(self, written: str) -> int | None:
        """The vehicle's id, or None when the text names none (or more than one) of the fleet."""
        key = _vehicle_key(written)
        for index in (0, 1, 2):
            found = self._by[index].get(key)
            if found is not None:
                return found
        return None


def _ride_lines_query(statement_id: int) -> Any:
    return (
        select(
            StatementLine.line_no,  # the line's identity within its statement
            StatementLine.line_no,
            StatementLine.kind,
            StatementLine.ride_id,
            StatementLine.boarded_at,
            StatementLine.vehicle_id,
            Vehicle.registration,
            StatementLine.meter_fare,
            StatementLine.subsidy_amount,
        )
        .outerjoin(Vehicle, Vehicle.id == StatementLine.vehicle_id)
        .where(
            StatementLine.statement_id == statement_id,
            StatementLine.kind.in_(RIDE_LINE_KINDS),
            StatementLine.ride_id.is_not(None),
        )
        .order_by(StatementLine.line_no)
        .execution_options(yield_per=LINE_FETCH_SIZE)
    )


def _ride_lines(session: Session, statement_id: int) -> Iterator[StatementRide]:
    # Core rows fetched a partition at a time from a server-side cursor: this runs once per line of a
    # statement that may have 200,000 of them.
    result = session.connection().execute(_ride_lines_query(statement_id))
    for partition in result.partitions():
        for line_id, line_no, kind, ride_id, boarded_at, vehicle_id, plate, fare, subsidy in partition:
            yield StatementRide(
                line_id, line_no, kind.value, ride_id, boarded_at, vehicle_id, plate or "", fare, subsidy
            )


# --- the result ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Matched:
    """A row of the log and the statement line it was matched to."""

    row: LogRow
    line: StatementRide
    matched_by: str  # ride_id | vehicle_time
    vehicle_id: int | None  # the log's vehicle, resolved

    @property
    def meter_fare_difference(self) -> int:
        """Theirs minus ours."""
        return self.row.meter_fare - self.line.meter_fare

    @property
    def subsidy_difference(self) -> int | None:
        """Theirs minus ours; None when the row claims no subsidy."""
        return None if self.row.subsidy is None else self.row.subsidy - self.line.subsidy

    def differences(self, tolerance: timedelta) -> list[str]:
        """What differs: meter_fare, subsidy, vehicle (if matched by number), boarded_at (past tolerance)."""
        found = []
        if self.meter_fare_difference:
            found.append("meter_fare")
        if self.subsidy_difference:
            found.append("subsidy")
        if self.vehicle_id != self.line.vehicle_id:
            found.append("vehicle")
        if self.line.boarded_at is not None and abs(self.row.boarded_at - self.line.boarded_at) > tolerance:
            found.append("boarded_at")
        return found


EXTRA_REASONS: Final = (
    "not_found",
    "voided",
    "other_statement",
    "not_on_a_statement",
    "already_matched",
    "duplicate_in_log",
    "unknown_vehicle",
)


@dataclass(frozen=True, slots=True)
class Extra:
    """A row of the log that is on no line of this statement, and what we know of why."""

    row: LogRow
    reason: str  # one of EXTRA_REASONS
    ride_id: int | None = None
    statement_number: str | None = None
    statement_period: date | None = None
    other_row: int | None = None  # the row it duplicates, or that took the ride

    @property
    def code(self) -> str:
        return f"reconciliation.extra.{self.reason}"

    def note(self, lang: str = "ja") -> str:
        period = "" if self.statement_period is None else f"{self.statement_period:%Y-%m}"
        return message_for(
            self.code, lang, number=self.statement_number or "", period=period, row=self.other_row or ""
        )


@dataclass(slots=True)
class Totals:
    """Counts and yen sums. `our_*` sum the statement's ride lines (matched and missing), `their_*` the
    log's readable rows (matched and extra); differences are theirs minus ours."""

    matched: int = 0
    missing: int = 0
    extra: int = 0
    errors: int = 0
    differing: int = 0  # matched pairs whose fare or claimed subsidy differ
    matched_our_meter_fare: int = 0
    matched_their_meter_fare: int = 0
    matched_our_subsidy: int = 0
    matched_their_subsidy: int = 0
    missing_meter_fare: int = 0
    missing_subsidy: int = 0
    extra_meter_fare: int = 0
    extra_subsidy: int = 0

    @property
    def our_meter_fare(self) -> int:
        return self.matched_our_meter_fare + self.missing_meter_fare

    @property
    def their_meter_fare(self) -> int:
        return self.matched_their_meter_fare + self.extra_meter_fare

    @property
    def our_subsidy(self) -> int:
        return self.matched_our_subsidy + self.missing_subsidy

    @property
    def their_subsidy(self) -> int:
        return self.matched_their_subsidy + self.extra_subsidy

    @property
    def meter_fare_difference(self) -> int:
        return self.their_meter_fare - self.our_meter_fare

    @property
    def difference(self) -> int:
        """What the log claims in subsidy minus what the statement pays for rides."""
        return self.their_subsidy - self.our_subsidy


@dataclass(frozen=True, slots=True)
class Reconciliation:
    statement_id: int
    number: str
    period: date
    operator_id: int
    tolerance: timedelta
    has_subsidy: bool  # the log has a 助成額 column; without it their subsidy sums are 0
    matched: list[Matched]
    missing: list[StatementRide]  # at most `missing_limit`, in line order
    missing_truncated: bool
    extra: list[Extra]
    errors: list[RowError]
    totals: Totals
    generated_at: datetime
    matched_line_ids: frozenset[int]


# --- matching ------------------------------------------------------------------------------------


def statement_for(
    session: Session, statement_id: int, *, municipality_id: int, operator_id: int | None = None
) -> Statement:
    """The statement, if the caller may see it: of their city and, for an operator admin, their operator.

    Raises NotFound statement.not_found otherwise (the same answer as for a statement that does not exist).
    """
    statement = session.get(Statement, statement_id)
    if (
        statement is None
        or statement.municipality_id != municipality_id
        or (operator_id is not None and statement.operator_id != operator_id)
    ):
        raise NotFound("statement.not_found")
    return statement


def _generated_at(session: Session, statement_id: int) -> datetime | None:
    return session.scalar(select(Statement.generated_at).where(Statement.id == statement_id))


@dataclass(frozen=True, slots=True)
class Matching:
    """Which rows of the log matched which lines: row index -> (line, ``ride_id`` | ``vehicle_time``)."""

    matched: dict[int, tuple[StatementRide, str]]
    matched_line_ids: set[int]
    duplicates: dict[int, int]  # row index -> the row number whose ride number it repeats
    unknown_vehicle: set[int]  # row indexes without a ride number whose vehicle is not the operator's


def match_log(
    rows: Sequence[LogRow],
    vehicle_of: Sequence[int | None],
    lines: Iterable[StatementRide],
    *,
    tolerance: timedelta = DEFAULT_TOLERANCE,
) -> Matching:
    """Match log rows to statement lines in one pass over `lines` (rules in the module's docstring).

    `vehicle_of[i]` is the operator's vehicle that row i names (None: unknown). A ride number matches
    only the line of that ride; the other rows match lines of their vehicle within `tolerance`, nearest
    first (ties: lower line number, then earlier row), each line and row at most once. Memory grows with
    the rows (at most MAX_CANDIDATES_PER_ROW candidate lines each), not with the lines.
    """
    by_ref: dict[int, int] = {}
    duplicates: dict[int, int] = {}
    by_vehicle: dict[int, list[tuple[datetime, int]]] = {}
    unknown_vehicle: set[int] = set()
    for index, row in enumerate(rows):
        vehicle_id = vehicle_of[index]
        if row.ride_id is not None:
            if row.ride_id in by_ref:
                duplicates[index] = rows[by_ref[row.ride_id]].row
            else:
                by_ref[row.ride_id] = index
        elif vehicle_id is None:
            unknown_vehicle.add(index)
        else:
            by_vehicle.setdefault(vehicle_id, []).append((row.boarded_at, index))
    for same_vehicle in by_vehicle.values():
        same_vehicle.sort()
    times = {vehicle_id: [at for at, _index in entries] for vehicle_id, entries in by_vehicle.items()}

    matched: dict[int, tuple[StatementRide, str]] = {}
    heaps: dict[int, list[tuple[float, int, StatementRide]]] = {}  # farthest candidate on top
    for line in lines:
        ref_index = by_ref.get(line.ride_id)
        if ref_index is not None:
            matched[ref_index] = (line, "ride_id")
            continue
        if line.vehicle_id is None or line.boarded_at is None:
            continue
        entries = by_vehicle.get(line.vehicle_id)
        if not entries:
            continue
        position = bisect_left(times[line.vehicle_id], line.boarded_at - tolerance)
        latest = line.boarded_at + tolerance
        while position < len(entries) and entries[position][0] <= latest:
            at, index = entries[position]
            position += 1
            heap = heaps.setdefault(index, [])
            item = (-abs((at - line.boarded_at).total_seconds()), -line.line_no, line)
            if len(heap) < MAX_CANDIDATES_PER_ROW:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)

    taken = {line.line_id for line, _by in matched.values()}
    pairs = sorted(
        (-neg_delta, -neg_line_no, index, line)
        for index, heap in heaps.items()
        for neg_delta, neg_line_no, line in heap
    )
    for _delta, _line_no, index, line in pairs:
        if index not in matched and line.line_id not in taken:
            matched[index] = (line, "vehicle_time")
            taken.add(line.line_id)
    return Matching(matched, taken, duplicates, unknown_vehicle)


def reconcile(
    session: Session,
    *,
    statement_id: int,
    municipality_id: int,
    log: OperatorLog,
    operator_id: int | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    missing_limit: int = MISSING_LIMIT,
) -> Reconciliation:
    """Compare the operator's log with the statement's ride lines (rules in the module's docstring).

    `operator_id` limits the caller to one operator's statements (an operator admin). Reads only.
    Raises NotFound statement.not_found outside the caller's city or operator, Refused validation for
    a tolerance outside 0–30 minutes, Conflict reconciliation.statement_changed when a draft statement
    is rebuilt while it is being read.
    """
    if not timedelta(0) <= tolerance <= MAX_TOLERANCE:
        raise Refused("validation", errors={"tolerance_minutes": ["0–30"]})
    statement = statement_for(session, statement_id, municipality_id=municipality_id, operator_id=operator_id)
    generated_at = statement.generated_at
    fleet = Fleet(
        session.execute(
            select(Vehicle.id, Vehicle.registration, Vehicle.label).where(
                Vehicle.operator_id == statement.operator_id
            )
        ).all()
    )
    rows = log.rows
    vehicle_of = [fleet.resolve(row.vehicle) for row in rows]

    matching = match_log(rows, vehicle_of, _ride_lines(session, statement.id), tolerance=tolerance)
    matched_rows, taken_lines = matching.matched, matching.matched_line_ids

    totals = Totals(errors=len(log.errors))
    matched: list[Matched] = []
    for index, (line, by) in matched_rows.items():
        pair = Matched(rows[index], line, by, vehicle_of[index])
        matched.append(pair)
        totals.matched += 1
        totals.matched_our_meter_fare += line.meter_fare
        totals.matched_their_meter_fare += pair.row.meter_fare
        totals.matched_our_subsidy += line.subsidy
        totals.matched_their_subsidy += pair.row.subsidy or 0
        if pair.meter_fare_difference or pair.subsidy_difference:
            totals.differing += 1
    matched.sort(key=lambda pair: (pair.line.line_no, pair.row.row))

    # Pass 2: what the log does not have.
    missing: list[StatementRide] = []
    for line in _ride_lines(session, statement.id):
        if line.line_id in taken_lines:
            continue
        totals.missing += 1
        totals.missing_meter_fare += line.meter_fare
        totals.missing_subsidy += line.subsidy
        if len(missing) < missing_limit:
            missing.append(line)

    extra = _explain_extras(
        session,
        statement,
        rows,
        [index for index in range(len(rows)) if index not in matched_rows],
        vehicle_of=vehicle_of,
        duplicates=matching.duplicates,
        unknown_vehicle=matching.unknown_vehicle,
        matched_by_ride={pair.line.ride_id: pair.row.row for pair in matched},
        tolerance=tolerance,
    )
    for extra_row in extra:
        totals.extra += 1
        totals.extra_meter_fare += extra_row.row.meter_fare
        totals.extra_subsidy += extra_row.row.subsidy or 0

    if _generated_at(session, statement.id) != generated_at:
        raise Conflict("reconciliation.statement_changed")
    return Reconciliation(
        statement_id=statement.id,
        number=statement.number,
        period=statement.period,
        operator_id=statement.operator_id,
        tolerance=tolerance,
        has_subsidy=log.has_subsidy,
        matched=matched,
        missing=missing,
        missing_truncated=totals.missing > len(missing),
        extra=extra,
        errors=sorted(log.errors, key=lambda error: error.row),
        totals=totals,
        generated_at=generated_at,
        matched_line_ids=frozenset(taken_lines),
    )


@dataclass(frozen=True, slots=True)
class _Known:
    ride_id: int
    status: RideStatus
    vehicle_id: int
    boarded_at: datetime
    statement_id: int | None
    statement_number: str | None
    statement_period: date | None


def _known_rides(session: Session, statement: Statement, condition: Any) -> list[_Known]:
    query = (
        select(
            Ride.id,
            Ride.status,
            Ride.vehicle_id,
            Ride.boarded_at,
            Statement.id,
            Statement.number,
            Statement.period,
        )
        .outerjoin(StatementLine, StatementLine.ride_id == Ride.id)
        .outerjoin(Statement, Statement.id == StatementLine.statement_id)
        .where(
            Ride.municipality_id == statement.municipality_id,
            Ride.operator_id == statement.operator_id,
            condition,
        )
    )
    return [_Known(*row) for row in session.execute(query)]


def _explain_extras(
    session: Session,
    statement: Statement,
    rows: list[LogRow],
    unmatched: list[int],
    *,
    vehicle_of: list[int | None],
    duplicates: dict[int, int],
    unknown_vehicle: set[int],
    matched_by_ride: dict[int, int],
    tolerance: timedelta,
) -> list[Extra]:
    """Why each unmatched row is extra, from a few batched look-ups of the operator's own rides."""
    by_ref = [index for index in unmatched if rows[index].ride_id is not None and index not in duplicates]
    by_time = [
        index
        for index in unmatched
        if rows[index].ride_id is None and index not in unknown_vehicle and index not in duplicates
    ]
    known_by_id: dict[int, _Known] = {}
    for chunk in _chunks(by_ref, LOOKUP_CHUNK):
        ids = [rows[index].ride_id for index in chunk]
        for known in _known_rides(session, statement, Ride.id.in_(ids)):
            known_by_id[known.ride_id] = known
    nearest: dict[int, _Known] = {}
    for group in _time_groups(by_time, rows):
        earliest, latest = rows[group[0]].boarded_at - tolerance, rows[group[-1]].boarded_at + tolerance
        vehicles = {vehicle_of[index] for index in group}
        found: dict[int | None, list[_Known]] = {}
        window = and_(Ride.boarded_at >= earliest, Ride.boarded_at <= latest, Ride.vehicle_id.in_(vehicles))
        for known in _known_rides(session, statement, window):
            found.setdefault(known.vehicle_id, []).append(known)
        for index in group:
            row = rows[index]
            close = [
                known
                for known in found.get(vehicle_of[index], ())
                if abs(known.boarded_at - row.boarded_at) <= tolerance
            ]
            if close:
                nearest[index] = min(close, key=lambda k: (abs(k.boarded_at - row.boarded_at), k.ride_id))

    extra: list[Extra] = []
    for index in unmatched:
        row = rows[index]
        if index in duplicates:
            extra.append(Extra(row, "duplicate_in_log", row.ride_id, other_row=duplicates[index]))
            continue
        if index in unknown_vehicle:
            extra.append(Extra(row, "unknown_vehicle"))
            continue
        found_ride = known_by_id.get(row.ride_id) if row.ride_id is not None else nearest.get(index)
        extra.append(_explained(row, found_ride, statement.id, matched_by_ride))
    return sorted(extra, key=lambda item: item.row.row)


def _explained(
    row: LogRow, known: _Known | None, statement_id: int, matched_by_ride: dict[int, int]
) -> Extra:
    if known is None:
        return Extra(row, "not_found", row.ride_id)
    if known.status == RideStatus.VOIDED:
        return Extra(row, "voided", known.ride_id)
    if known.statement_id == statement_id:
        return Extra(row, "already_matched", known.ride_id, other_row=matched_by_ride.get(known.ride_id))
    if known.statement_id is not None:
        return Extra(row, "other_statement", known.ride_id, known.statement_number, known.statement_period)
    return Extra(row, "not_on_a_statement", known.ride_id)


def _time_groups(indexes: list[int], rows: list[LogRow]) -> Iterator[list[int]]:
    """Rows in boarding order, cut into groups spanning at most LOOKUP_SPAN and LOOKUP_CHUNK rows: one
    index range scan of the operator's rides per group, however the rows are spread over the month."""
    group: list[int] = []
    for index in sorted(indexes, key=lambda i: rows[i].boarded_at):
        if group and (
            len(group) >= LOOKUP_CHUNK or rows[index].boarded_at - rows[group[0]].boarded_at > LOOKUP_SPAN
        ):
            yield group
            group = []
        group.append(index)
    if group:
        yield group


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def missing_lines(session: Session, result: Reconciliation) -> Iterator[StatementRide]:
    """Every missing line of `result`, streamed again from the statement in line order (for the CSV).

    Raises Conflict reconciliation.statement_changed if the statement was rebuilt since `result`.
    """
    if _generated_at(session, result.statement_id) != result.generated_at:
        raise Conflict("reconciliation.statement_changed")
    for line in _ride_lines(session, result.statement_id):
        if line.line_id not in result.matched_line_ids:
            yield line


# --- the result as CSV ---------------------------------------------------------------------------

RESULT_HEADER: Final = (
    "結果",
    "ログ行",
    "明細番号",
    "乗車番号",
    "乗車日時(精算書)",
    "乗車日時(ログ)",
    "車両(精算書)",
    "車両(ログ)",
    "メーター料金(精算書)",
    "メーター料金(ログ)",
    "メーター料金差額",
    "助成額(精算書)",
    "助成額(ログ)",
    "助成額差額",
    "備考",
)


def _blank(value: int | None) -> int | str:
    return "" if value is None else value


def reconciliation_csv(result: Reconciliation, missing: Iterable[StatementRide], lang: str = "ja") -> bytes:
    """The result for Excel: UTF-8 with BOM, CRLF, one row per matched pair, missing line, extra row and
    unreadable row (in that order), then a blank row and the totals as label/value rows.

    `missing` is every missing line (``missing_lines``), not the listed few of `result`.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(RESULT_HEADER)
    for pair in result.matched:
        differences = pair.differences(result.tolerance)
        writer.writerow(
            [
                "差異あり" if differences else "一致",
                pair.row.row,
                pair.line.line_no,
                pair.line.ride_id,
                _jst_text(pair.line.boarded_at),
                _jst_text(pair.row.boarded_at),
                cell_text(pair.line.vehicle),
                cell_text(pair.row.vehicle),
                pair.line.meter_fare,
                pair.row.meter_fare,
                pair.meter_fare_difference,
                pair.line.subsidy,
                _blank(pair.row.subsidy),
                _blank(pair.subsidy_difference),
                "・".join(_DIFFERENCE_LABELS[name] for name in differences),
            ]
        )
    for line in missing:
        writer.writerow(
            [
                "ログになし",
                "",
                line.line_no,
                line.ride_id,
                _jst_text(line.boarded_at),
                "",
                cell_text(line.vehicle),
                "",
                line.meter_fare,
                "",
                -line.meter_fare,
                line.subsidy,
                "",
                -line.subsidy,
                "",
            ]
        )
    for item in result.extra:
        writer.writerow(
            [
                "精算書になし",
                item.row.row,
                "",
                _blank(item.ride_id),
                "",
                _jst_text(item.row.boarded_at),
                "",
                cell_text(item.row.vehicle),
                "",
                item.row.meter_fare,
                item.row.meter_fare,
                "",
                _blank(item.row.subsidy),
                _blank(item.row.subsidy),
                cell_text(item.note(lang)),
            ]
        )
    for error in result.errors:
        writer.writerow(["読めない行", error.row, *([""] * 12), cell_text(error.reason(lang))])
    totals = result.totals
    writer.writerow([])
    writer.writerows(
        [
            ["精算書番号", cell_text(result.number)],
            ["一致件数", totals.matched],
            ["うち差異あり", totals.differing],
            ["ログになし件数", totals.missing],
            ["精算書になし件数", totals.extra],
            ["読めない行数", totals.errors],
            ["メーター料金合計(精算書)", totals.our_meter_fare],
            ["メーター料金合計(ログ)", totals.their_meter_fare],
            ["助成額合計(精算書)", totals.our_subsidy],
            ["助成額合計(ログ)", totals.their_subsidy if result.has_subsidy else ""],
            ["助成額差額(ログ-精算書)", totals.difference if result.has_subsidy else ""],
        ]
    )
    return BOM + buffer.getvalue().encode("utf-8")


_DIFFERENCE_LABELS: Final = {
    "meter_fare": "メーター料金",
    "subsidy": "助成額",
    "vehicle": "車両",
    "boarded_at": "乗車日時",
}
