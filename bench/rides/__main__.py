"""`python -m bench.rides`: run the boarding benchmark."""

from __future__ import annotations

import sys

from bench.rides.run import main

if __name__ == "__main__":
    sys.exit(main())
