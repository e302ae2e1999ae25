"""MLflow: the tracking store, a parent run per stage and a child run per member, the trained networks logged as
plain PyTorch models and the best one registered. Swapping the tracker means rewriting this package only.

It may import: data, engine, stores, thesis.
"""
