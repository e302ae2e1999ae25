"""The measures that test the paper's thesis, why BN helps: internal covariate shift per Santurkar et al. 2018
(Definition 2.1), the loss landscape along the step (their Sec. 3.1) and the effective learning rate of Arora, Li and
Lyu 2019, taken on the engine's members without touching their training. No stage records them yet.

It may import: data, engine.
"""
