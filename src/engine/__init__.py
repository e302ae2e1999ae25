"""The training engine: the paper's network and Batch Normalization (Algorithms 1 and 2), K members trained at once
as one computation by one optimizer, on the device, resumable between any two steps; the clock of its phases and the
progress a user watches (which the stages above report their own work on too). It knows nothing of tracking, tuning or
files.

Besides the study's two variants (vanilla, bn) it builds and trains "noisy_bn" (`noise.py`, Santurkar et al. 2018
Sec. 2.1): BN followed by per-unit noise of non-zero mean and non-unit variance, drawn once per training step by the
trainer (`MLP.redraw_noise`) and held, so every forward of a step sees the same noise; none at inference. No stage
trains it.

It may import: data.
"""
