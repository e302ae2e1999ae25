"""The study's library: data, Batch Normalization, models, engine, tuning, tracking, the comparison."""
