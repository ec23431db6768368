"""Settings for the statements that go over a whole month of lines at once (the close, the line CSVs)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

WORK_MEM = "64MB"
"""Enough to sort one operator's month of lines (a million) in memory."""


def for_a_month_of_lines(session: Session) -> None:
    """On PostgreSQL, for the current transaction only: sort a month's lines in memory rather than on
    disk, and do not JIT-compile. JIT pays off for a query run many times over big data; these run once
    per statement, and compiling their CASE expressions costs more (≈ 0.4 s) than it saves."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
    session.execute(text("SET LOCAL jit = off"))
