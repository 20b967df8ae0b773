"""Benchmarks: one module per benchmark (bench_*.py); `make bench` runs them all."""
