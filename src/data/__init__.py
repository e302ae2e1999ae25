"""MNIST as the study uses it: the four files fetched and verified, the IDX format parsed, and the train, validation
and test splits, stored as uint8 and loaded onto the device.

It may import: no package.
"""
