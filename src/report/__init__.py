"""reports/: the Markdown report and every figure, from the comparison and the metrics.

It may import: analysis, data, engine, metrics, results, stores, sweep, thesis, tracking, training, tune.
"""
