"""The boarding benchmark: board + fare through the API under gunicorn on PostgreSQL, against a floor.

Run it as ``python -m bench.rides``; see bench/README.md.
"""
