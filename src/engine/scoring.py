"""How trained members are scored on a whole split: accuracy and mean loss, predicted classes, and the percentiles of
the last hidden layer's sigmoid inputs. Inference mode throughout (BN under its running or population statistics).

Inference needs no batch statistics across members, so each block of members is scored alone, chunk by chunk of
examples: the working set stays a few MB whatever K is, where a whole grid's (K, examples, 100) activations ran to
hundreds of MB a layer and cost more in memory traffic than in arithmetic. The first layer of a block is one dense
GEMM of the chunk's images against the block's weights side by side: summing the weight rows of each image's active
pixels (`embedding_bag`, 13 % of binarised MNIST's pixels) did a seventh of the arithmetic but ran 4-7x slower
(benchmarks/README.md, "Scoring's first layer").
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from src.data.splits import Split
from src.engine.affine import MemberLinear
from src.engine.batchnorm import BATCH_DIM, BatchNorm
from src.engine.network import MLP, member_labels, member_losses

MEMBER_BLOCK = 32  # members scored together: (32, 1,000, 100) activations are 12.8 MB
EXAMPLE_CHUNK = 1_000


@torch.no_grad()
def score_members(model: MLP, split: Split) -> tuple[Tensor, Tensor]:
    """Accuracy and mean cross-entropy of every member on `split`, as (K,) device tensors."""
    like = {"device": split.labels.device, "dtype": model.output.weight.dtype}
    correct, loss_sum = torch.zeros(model.members, **like), torch.zeros(model.members, **like)
    for block, start, stop, logits in _logits(model, split.images):
        labels = split.labels[start:stop]
        loss_sum[block] += member_losses(logits, labels) * len(labels)
        correct[block] += (logits.argmax(dim=-1) == member_labels(labels, logits.shape[0])).sum(dim=-1)
    return correct / len(split.labels), loss_sum / len(split.labels)


@torch.no_grad()
def predict_members(model: MLP, split: Split) -> Tensor:
    """(K, N) uint8: every member's predicted class of each example of `split`."""
    predicted = torch.empty(model.members, len(split.labels), dtype=torch.uint8, device=split.labels.device)
    for block, start, stop, logits in _logits(model, split.images):
        predicted[block, start:stop] = logits.argmax(dim=-1).to(torch.uint8)
    return predicted


@torch.no_grad()
def sigmoid_input_percentiles(model: MLP, probe_images: Tensor, units: int, levels: tuple[float, ...]) -> Tensor:
    """(len(levels), K, units): percentiles over the probe examples of the first `units` last-layer sigmoids' inputs."""
    like = {"device": probe_images.device, "dtype": model.output.weight.dtype}
    found = torch.empty(len(levels), model.members, units, **like)
    quantiles = torch.tensor(levels, **like)
    for block in _blocks(model.members):
        inputs = _forward(model, block, _first_weights(model.hidden[0], block), probe_images, last_units=units)
        found[:, block] = torch.quantile(inputs, quantiles, dim=1)
    return found


def _blocks(members: int) -> list[slice]:
    return [slice(start, min(start + MEMBER_BLOCK, members)) for start in range(0, members, MEMBER_BLOCK)]


def _logits(model: MLP, images: Tensor) -> Iterator[tuple[slice, int, int, Tensor]]:
    """(members, first example, end, logits (k, chunk, classes)) for every block of members and chunk of examples."""
    for block in _blocks(model.members):
        weights = _first_weights(model.hidden[0], block)
        for start in range(0, len(images), EXAMPLE_CHUNK):
            stop = min(start + EXAMPLE_CHUNK, len(images))
            yield block, start, stop, _forward(model, block, weights, images[start:stop])


def _first_weights(first: MemberLinear, block: slice) -> Tensor:
    """(in, k·out): the first layer's weights of the members `block` side by side, one row per input pixel (a copy),
    so that one GEMM computes the whole block's first layer."""
    weight = first.weight[block]
    return weight.permute(2, 0, 1).reshape(weight.shape[2], -1)


def _forward(model: MLP, block: slice, weights: Tensor, images: Tensor, last_units: int | None = None) -> Tensor:
    """Members `block` in inference mode on `images` (`weights`: `_first_weights` of the block): the logits
    (k, examples, classes), or with `last_units` the inputs of the last hidden layer's first `last_units` sigmoids
    (k, examples, last_units)."""
    members, hidden = block.stop - block.start, len(model.hidden)
    h = None
    for layer, affine in enumerate(model.hidden):
        last = layer == hidden - 1 and last_units is not None
        units = slice(0, last_units) if last else slice(None)
        if layer:
            z = _affine(affine, block, units, h)
        else:
            z = (images @ weights).view(len(images), members, -1).transpose(0, 1)[..., units]  # (k, examples, out)
            z = z if affine.bias is None else z + affine.bias[block, :, units]
        if model.batch_norm:
            z = _infer(model.norms[layer], z, block, units)
        if last:
            return z
        h = z.sigmoid_()
    return _affine(model.output, block, slice(None), h)


def _affine(affine: MemberLinear, block: slice, units: slice, h: Tensor) -> Tensor:
    """u W_kᵀ (+ b_k) of the members `block`, for the output `units` only."""
    weight = affine.weight[block, units]
    if affine.bias is None:
        return torch.bmm(h, weight.mT)
    return torch.baddbmm(affine.bias[block, :, units], h, weight.mT)


def _infer(norm: BatchNorm, x: Tensor, block: slice, units: slice) -> Tensor:
    """Algorithm 2's inference transform of `norm` for the members `block` and their `units`, computed as the layer's
    own inference does it: γ/√(Var[x] + ε)·(x − E[x]) + β."""
    scale = (norm.weight[block, units] * (norm.running_var[block, units] + norm.eps).rsqrt()).unsqueeze(BATCH_DIM)
    centred = x - norm.running_mean[block, units].unsqueeze(BATCH_DIM)
    return torch.addcmul(norm.bias[block, units].unsqueeze(BATCH_DIM), centred, scale)
