"""The study's library, one package per wing, layered bottom to top: data, engine, stores, tracking, training,
results, then tune and sweep, analysis, metrics, report; the modules beside them (config, paths, errors, atomic, cli)
are the ground every package stands on. The stages in pipeline/ call it."""
