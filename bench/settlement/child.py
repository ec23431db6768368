"""The measured side: close one month and make every export a finance clerk downloads, in a fresh process.

Run by bench.settlement.run as `python -m bench.settlement.child '<json>'`, so the parent can read this
process's own peak RSS (os.wait4). Prints one JSON object on stdout: the timings, the files written, the
RSS after the imports, and the statements' totals.

What it does is what the product does, through the product's functions:

1. close: `settlement.tasks.run_period_now`, which is the Celery tasks' path in one process: start_run,
   begin_run, close_operator per operator (each its own transaction), finish_run;
2. sign-off: each statement confirmed by the finance clerk and approved by the approver;
3. exports, each written to a file: the statement CSV and PDF of every statement (settlement.documents,
   as the API's download endpoints make them), the month's line CSV and summary CSV, and the Zengin
   transfer file of the approved statements.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from settlement import documents, service
from settlement.exports import calendar, csv_export, pdf, zengin
from settlement.statements import format_period, parse_period
from settlement.tasks import run_period_now
from voucher_api.clock import FixedClock
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import Operator, Statement


def _status_kb(field: str) -> int:
    """A field of /proc/self/status in KiB (VmRSS: resident now, VmHWM: its peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> bool:
    """Start the peak RSS over (Linux: writing 5 to clear_refs), so the imports' own transient peak
    (zengin-code's bank list, reportlab) does not hide what the work itself needs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run(job: dict[str, Any]) -> dict[str, Any]:
    period = parse_period(job["period"])
    now = datetime.fromisoformat(job["now"])
    out = Path(job["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    engine = make_engine(job["database_url"], pool_size=2)
    factory = make_session_factory(engine)
    result: dict[str, Any] = {
        "rss_import_peak_kb": _status_kb("VmHWM"),
        "peak_reset": _reset_peak(),
        "rss_after_imports_kb": _status_kb("VmRSS"),
    }
    timings: dict[str, float] = {}
    files: dict[str, int] = {}

    started = time.perf_counter()
    run_record = run_period_now(
        factory, job["municipality_code"], period, "bench:settlement", clock=FixedClock(now), trigger="cli"
    )
    timings["close"] = time.perf_counter() - started
    result["run_status"] = run_record.status.value

    with factory() as session:
        rows = session.execute(
            select(Statement.id, Statement.number)
            .join(Operator, Operator.id == Statement.operator_id)
            .where(Statement.municipality_id == job["municipality_id"], Statement.period == period)
            .order_by(Operator.code)
        ).all()
    statements = [(int(row[0]), str(row[1])) for row in rows]

    started = time.perf_counter()
    for statement_id, _number in statements:
        for act, staff_id, later in (
            (service.confirm_statement, job["finance_id"], timedelta(days=1)),
            (service.approve_statement, job["approver_id"], timedelta(days=2)),
        ):
            with factory() as session:
                act(
                    session,
                    statement_id=statement_id,
                    municipality_id=job["municipality_id"],
                    staff_id=staff_id,
                    actor=f"staff:{staff_id}",
                    now=now + later,
                )
                session.commit()
    timings["sign_off"] = time.perf_counter() - started

    started = time.perf_counter()
    with factory() as session:
        for statement_id, number in statements:
            path = out / f"statement-{number}.csv"
            with path.open("wb") as stream:
                documents.write_statement_csv(session, statement_id, stream)
            files[path.name] = path.stat().st_size
    timings["statement_csvs"] = time.perf_counter() - started

    started = time.perf_counter()
    with factory() as session:
        path = out / f"statement-lines-{format_period(period)}.csv"
        with path.open("wb") as stream:
            documents.write_month_csv(
                session, municipality_id=job["municipality_id"], period=period, stream=stream
            )
        files[path.name] = path.stat().st_size
        path = out / f"statements-{format_period(period)}.csv"
        path.write_bytes(
            csv_export.month_summary_csv(
                documents.period_docs(session, municipality_id=job["municipality_id"], period=period)
            )
        )
        files[path.name] = path.stat().st_size
    timings["month_csvs"] = time.perf_counter() - started

    started = time.perf_counter()
    with factory() as session:
        for statement_id, number in statements:
            path = out / f"statement-{number}.pdf"
            path.write_bytes(pdf.statement_pdf(documents.statement_pdf_doc(session, statement_id)))
            files[path.name] = path.stat().st_size
    timings["pdfs"] = time.perf_counter() - started

    started = time.perf_counter()
    with factory() as session:
        data = zengin.transfer_file(
            documents.remitter_of(session, job["municipality_id"]),
            documents.transfers_for(session, municipality_id=job["municipality_id"], period=period),
            payment_date=calendar.payment_date(period),
        )
        path = out / f"zengin-{format_period(period)}.txt"
        path.write_bytes(data)
        files[path.name] = path.stat().st_size
    timings["zengin"] = time.perf_counter() - started

    with factory() as session:
        result["statements"] = [
            {
                "number": statement.number,
                "operator_id": statement.operator_id,
                "status": statement.status.value,
                "ride_count": statement.ride_count,
                "fare_total": statement.fare_total,
                "rider_share_total": statement.rider_share_total,
                "subsidy_total": statement.subsidy_total,
                "amount_due": statement.amount_due,
            }
            for statement in session.scalars(
                select(Statement)
                .where(Statement.municipality_id == job["municipality_id"], Statement.period == period)
                .order_by(Statement.number)
            )
        ]
    engine.dispose()
    result["timings"] = timings
    result["files"] = files
    result["rss_peak_self_kb"] = _status_kb("VmHWM")
    return result


def main() -> None:
    job = json.loads(sys.argv[1])
    print(json.dumps(run(job)))


if __name__ == "__main__":
    main()
