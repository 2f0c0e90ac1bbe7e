"""Benchmarks: `make bench` runs them and appends the figures to bench/BENCHMARKS.md."""
