"""bench/settlement: the monthly close with its exports against a floor of bare SQL (issue 6, point 7)."""
