"""The training engine: the paper's network and Batch Normalization (Algorithms 1 and 2), K members trained at once
as one computation by one optimizer, on the device, resumable between any two steps; the clock of its phases and the
progress a user watches (which the stages above report their own work on too). It knows nothing of tracking, tuning or
files.

It may import: data.
"""
