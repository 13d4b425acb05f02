"""Benchmarks (not part of the test run). See docs/performance.md."""
