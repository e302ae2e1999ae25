"""The study's library: data, Batch Normalization, models, engine, tuning, tracking, evaluation."""

import os

# The study runs on machines without internet: MLflow's usage telemetry must not reach for the network.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
