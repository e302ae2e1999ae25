"""The comparison decided from what the stages wrote: per-seed outcomes, what a curve says, paired statistics, each
claim's specification curve, the primary claims as one corrected family, the map and the horizon check.

It may import: data, engine, results, stores, sweep, thesis, tracking, training, tune.
"""
