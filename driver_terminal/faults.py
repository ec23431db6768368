"""Named points in the terminal's write and sync paths where a test can freeze the process to kill it.

The crash tests start the terminal in a subprocess with DRIVER_TERMINAL_PAUSE_AT=<point>[,<point>…] and
DRIVER_TERMINAL_PAUSE_FILE=<path>: on reaching a named point the process writes the point's name to that
file and waits until it is killed. With neither variable set (always, outside those tests) a checkpoint
does nothing but look at the environment.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Final

PAUSE_AT_ENV: Final = "DRIVER_TERMINAL_PAUSE_AT"
PAUSE_FILE_ENV: Final = "DRIVER_TERMINAL_PAUSE_FILE"

# The points, in the order a boarding and a sync reach them.
POINTS: Final = (
    "board.numbered",  # online: sequence and key committed, nothing sent yet
    "board.answered",  # online: the API answered, the answer not yet kept
    "offline.writing",  # offline: inside the transaction that keeps the signed record
    "offline.kept",  # offline: the record is committed, the screen does not say so yet
    "sync.sending",  # a batch is about to be sent
    "sync.answered",  # the API answered a batch, the results not yet kept
)


def checkpoint(name: str) -> None:
    """Freeze here if a crash test asked for this point (see the module docstring)."""
    wanted = os.environ.get(PAUSE_AT_ENV)
    if not wanted or name not in wanted.split(","):
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if marker:
        Path(marker).write_text(name, encoding="utf-8")
    while True:  # until the test kills the process
        time.sleep(3600)
