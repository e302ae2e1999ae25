"""Micro-benchmark: one BN layer's training step (forward + backward) on the paper's shapes, three ways, side by side.

    python -m benchmarks.bench_batchnorm [--rounds 9] [--seconds 0.3] [--threads N]

(a) `src.engine.batchnorm.BatchNorm` in train mode: the custom autograd.Function (paper's backward) + moving averages.
(b) the same forward math and moving averages written as plain tensor ops, differentiated by autograd.
(c) torch.nn.BatchNorm1d in train mode (PyTorch's fused native kernel). With K members the input is normalised
    over the batch per (member, feature), which is exactly one nn.BatchNorm1d over K·F features of a (B, K·F) input:
    (c) gets its input already in that layout (its best case); (c') loops over K nn.BatchNorm1d(F), one per member.
Every row returns the gradients of x, γ and β for the same upstream gradient (torch.autograd.grad, nothing
accumulates). The rows are timed in interleaved rounds (each round times every cell with
torch.utils.benchmark.Timer.blocked_autorange), so a busy shared machine slows all rows alike; a cell is the best
round's median (the least disturbed estimate), and ratio = time / time of (a) in the same column.
"""

from __future__ import annotations

import os
import platform

import torch
from torch import nn
from torch.utils.benchmark import Timer

from src.cli import OneLineParser, report_user_errors
from src.engine.batchnorm import BatchNorm

BATCH, FEATURES = 60, 100  # the paper's mini-batch and hidden layer
MEMBERS = (1, 8)


def autograd_batch_norm(layer: BatchNorm, x: torch.Tensor) -> torch.Tensor:
    """Row (b): Algorithm 1 and the moving averages as plain ops; autograd derives the backward."""
    batch = x.shape[-2]
    mean = x.mean(-2, keepdim=True)
    centred = x - mean
    var = (centred * centred).mean(-2, keepdim=True)
    x_hat = centred * (var + layer.eps).rsqrt()
    with torch.no_grad():
        layer.running_mean.lerp_(mean.squeeze(-2), layer.momentum)
        layer.running_var.mul_(1 - layer.momentum).add_(var.squeeze(-2), alpha=layer.momentum * batch / (batch - 1))
        layer.num_batches_tracked.add_(1)
    return torch.addcmul(layer.bias.unsqueeze(-2), x_hat, layer.weight.unsqueeze(-2))


def cases(members: int) -> dict[str, tuple]:
    """Row label -> (forward function, input, parameters): a zero-argument training step is built from each."""
    generator = torch.Generator().manual_seed(members)
    shape = (BATCH, FEATURES) if members == 1 else (members, BATCH, FEATURES)
    x = (torch.randn(shape, generator=generator) * 3 + 2).requires_grad_()
    ours = BatchNorm(FEATURES, members=None if members == 1 else members)
    composed = BatchNorm(FEATURES, members=None if members == 1 else members)
    native = nn.BatchNorm1d(members * FEATURES)
    x_side_by_side = x.detach().transpose(0, 1).reshape(BATCH, -1).requires_grad_() if members > 1 else x
    rows = {
        "(a) BatchNorm: custom Function": (ours, x, [ours.weight, ours.bias]),
        "(b) autograd composition": (lambda t: autograd_batch_norm(composed, t), x, [composed.weight, composed.bias]),
        "(c) nn.BatchNorm1d(K·F)": (native, x_side_by_side, [native.weight, native.bias]),
    }
    if members > 1:
        per_member = nn.ModuleList(nn.BatchNorm1d(FEATURES) for _ in range(members))
        rows["(c') K × nn.BatchNorm1d(F), looped"] = (
            lambda t: torch.stack([norm(t[m]) for m, norm in enumerate(per_member)]),
            x,
            list(per_member.parameters()),
        )
    return rows


def training_step(forward, x: torch.Tensor, parameters: list[torch.Tensor]):
    upstream = torch.randn(forward(x).shape, generator=torch.Generator().manual_seed(0))

    def step():
        return torch.autograd.grad(forward(x), [x, *parameters], upstream)

    return step


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument("--seconds", type=float, default=0.3, help="minimum time per cell per round (default 0.3)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    if not args.seconds > 0:
        parser.error(f"--seconds must be > 0, got {args.seconds}")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    steps = {(label, members): training_step(*case) for members in MEMBERS for label, case in cases(members).items()}
    samples: dict[tuple[str, int], list[float]] = {cell: [] for cell in steps}
    for _ in range(args.rounds):
        for cell, step in steps.items():
            samples[cell].append(
                Timer("step()", globals={"step": step}).blocked_autorange(min_run_time=args.seconds).median
            )
    results: dict[str, dict[int, float]] = {}
    for (label, members), times in samples.items():
        results.setdefault(label, {})[members] = min(times)

    print(
        f"BN layer, forward + backward, batch {BATCH} × {FEATURES} features; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
        f"load average {os.getloadavg()[0]:.1f}, best of {args.rounds} interleaved rounds"
    )
    header = "| implementation | " + " | ".join(f"K={k}: µs | K={k}: ratio" for k in MEMBERS) + " |"
    print(header)
    print("|" + "---|" * (1 + 2 * len(MEMBERS)))
    first = next(iter(results.values()))
    for label, times in results.items():
        cells = []
        for members in MEMBERS:
            if members in times:
                cells += [f"{times[members] * 1e6:.1f}", f"{times[members] / first[members]:.2f}"]
            else:
                cells += ["—", "—"]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    report_user_errors(main)
