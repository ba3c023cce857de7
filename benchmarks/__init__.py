"""On-demand benchmarks (``make bench``, ``python -m benchmarks``); never part of the tests."""
