"""The one training path of train@, sweep@ and edge@: who the members are, their trainer built from a stage's
TrainingRun, checkpointed and resumed bit for bit under the identity (params, data, code) that decides the numbers.

It may import: data, engine, stores, thesis, tracking.
"""
