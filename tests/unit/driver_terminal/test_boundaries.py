"""driver_terminal talks to the API over HTTP only: it imports nothing from voucher_api (nor Flask)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import driver_terminal

REPOSITORY = Path(__file__).resolve().parents[3]


def test_driver_terminal_imports_nothing_from_voucher_api() -> None:
    modules = sorted(f"driver_terminal.{m.name}" for m in pkgutil.iter_modules(driver_terminal.__path__))
    assert "driver_terminal.cli" in modules
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('voucher_api', 'flask'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(done.stdout) == []
