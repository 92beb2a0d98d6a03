"""Benchmarks of the dunning engine, each with its baselines in the same run (issue 6).

See bench/README.md: `python -m bench.ingest`, `python -m bench.run`,
`python -m bench.activity`, `python -m bench.verify_bulk`.
"""
