"""Benchmarks: each runs the real stack and prints a ratio against a floor measured in the same run."""
