"""driver_terminal talks to the API over HTTP only: it imports nothing from voucher_api. Flask is the
kiosk's alone: the CLI, the store and the sync do not pull a web framework in."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import driver_terminal

REPOSITORY = Path(__file__).resolve().parents[3]


def imported_after(modules: list[str]) -> list[str]:
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
    return list(json.loads(done.stdout))


def all_modules() -> list[str]:
    found = pkgutil.walk_packages(driver_terminal.__path__, prefix="driver_terminal.")
    return sorted(m.name for m in found if m.name != "driver_terminal.__main__")


def test_driver_terminal_imports_nothing_from_voucher_api() -> None:
    modules = all_modules()
    assert {"driver_terminal.cli", "driver_terminal.kiosk.app"} <= set(modules)
    assert [name for name in imported_after(modules) if name.startswith("voucher_api")] == []


def test_only_the_kiosk_imports_flask() -> None:
    outside = [name for name in all_modules() if not name.startswith("driver_terminal.kiosk.")]
    assert imported_after(outside) == []
