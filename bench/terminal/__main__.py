"""`python -m bench.terminal`: run the tap-to-confirmation benchmark."""

from __future__ import annotations

import sys

from bench.terminal.run import main

if __name__ == "__main__":
    sys.exit(main())
