"""Splits: val carved from train by class, exactly sized and seeded; stored as uint8, scaled or binarised on load;
mini-batches drawn by index in one seeded order per data seed, resumable from its state."""

from __future__ import annotations

import copy

import pytest
import torch

from src.engine.batches import BatchOrder, gather
from tests import synthetic

CPU = torch.device("cpu")


def test_batch_orders_are_one_seeded_shuffle_of_whole_batches_per_group():
    order = BatchOrder(100, 30, [7, 8], CPU)
    batches = [order.next() for _ in range(7)]
    assert all(batch.shape == (2, 30) for batch in batches)
    for group in range(2):
        epoch = torch.cat([batch[group] for batch in batches[:3]])
        assert len(set(epoch.tolist())) == 90  # no example twice within an epoch; the remainder is dropped
        assert not torch.equal(epoch, torch.cat([batch[group] for batch in batches[3:6]]))  # a new shuffle per epoch
    assert not torch.equal(batches[0][0], batches[0][1])  # two seeds, two orders
    alone = BatchOrder(100, 30, [8], CPU)
    assert all(torch.equal(alone.next(), batch[1:]) for batch in batches)  # group 1 follows seed 8's own order
    twice = BatchOrder(100, 30, [7, 7], CPU).next()
    assert torch.equal(twice[0], twice[1]) and torch.equal(twice[0], batches[0][0])


@pytest.mark.parametrize("taken_after", [0, 2, 3, 4])  # before the first epoch, inside one, at its end, in the next
def test_a_batch_order_restored_from_its_state_continues_the_same_order(taken_after):
    order = BatchOrder(100, 30, [7, 8], CPU)
    for _ in range(taken_after):
        order.next()
    state = copy.deepcopy(order.state_dict())
    expected = [order.next() for _ in range(5)]
    restored = BatchOrder(100, 30, [1, 2], CPU)  # other seeds: everything must come from the state
    restored.load_state_dict(state)
    assert all(torch.equal(restored.next(), batch) for batch in expected)


def test_a_batch_order_refuses_a_state_of_another_number_of_seeds_and_a_split_smaller_than_a_batch():
    with pytest.raises(ValueError, match="a batch order of 1 data seeds, expected 2"):
        BatchOrder(100, 30, [7, 8], CPU).load_state_dict(BatchOrder(100, 30, [7], CPU).state_dict())
    with pytest.raises(ValueError, match="the training split has 20 examples, fewer than one batch of 30"):
        BatchOrder(20, 30, [7], CPU)


def test_gather_returns_the_images_and_labels_at_the_indices():
    split = synthetic.split(20, seed=0)
    indices = torch.tensor([[3, 1, 4], [1, 5, 9]])
    images, labels = gather(split, indices)
    assert images.shape == (2, 3, 784) and labels.shape == (2, 3)
    assert torch.equal(images, split.images[indices]) and torch.equal(labels, split.labels[indices])
