"""The databases workers share: their URLs and the lock around a store's first use, Optuna's storage with heartbeats,
and which worker process (host, pid) is still alive.

It may import: data, engine.
"""
