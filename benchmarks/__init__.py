"""Benchmarks: accuracy and speed figures written into BENCHMARKS.md with the machine and date."""
