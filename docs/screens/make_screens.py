#!/usr/bin/env python3
"""Make the screenshots of every staff screen (and the hand-over slip) into docs/screens/.

The e2e tests take them while they drive the pages in headless Debian Chromium; this runs those tests
with E2E_SCREENSHOTS_DIR pointing here. Needs /usr/bin/chromium and Playwright (no browser download).

    .venv/bin/python docs/screens/make_screens.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def main() -> int:
    env = {**os.environ, "E2E_SCREENSHOTS_DIR": str(HERE)}
    command = [sys.executable, "-m", "pytest", "tests/e2e", "-q", "-p", "no:cacheprovider"]
    return subprocess.call(command, cwd=ROOT, env=env)  # noqa: S603 - our own interpreter and arguments


if __name__ == "__main__":
    raise SystemExit(main())
