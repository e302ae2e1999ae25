"""The files the stages hand each other, one module per stage as results/<stage>/ holds them: each file's layout,
its writer beside its reader, and one error naming a bad file and the stage that rewrites it.

It may import: data, engine, stores, thesis, tracking, training.
"""
