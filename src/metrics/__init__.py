"""results/metrics.json: its schema, built from the comparison, read back and printed (`python -m src.metrics`), and
one spelling of every number.

It may import: analysis, data, engine, results, stores, sweep, thesis, tracking, training, tune.
"""
