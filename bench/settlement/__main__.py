from __future__ import annotations

import sys

from bench.settlement.run import main

sys.exit(main())
