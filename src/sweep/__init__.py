"""The sweep's grid as a queue of units in an Optuna study (sweep@, `python -m src.sweep --worker`): the plan, the
queue, a unit's heartbeat and stored result, and the gather in the grid's order.

It may import: data, engine, results, stores, thesis, tracking, training.
"""
