"""Optuna tunes one variant's learning rate (tune@, `python -m src.tune`): the study, its workers, their budget,
pruning and dead workers.

It may import: data, engine, results, stores, thesis, tracking, training.
"""
