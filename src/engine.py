"""The training engine: K members (seeds, or tuning trials) trained at once as one vectorised computation.

The data sit on the device as tensors and mini-batches are drawn by index; every member has its own
learning rate; the affine weights are stepped inside the backward pass (`src.affine.weight_descent`), the few
other parameters after it; evaluation results stay on the device until an evaluation is reported, so the step
loop never waits for the host. Tracking and tuning wrap this module from outside: it knows nothing of them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from src.affine import weight_descent
from src.batchnorm import population_statistics
from src.data import Split
from src.models import MLP, member_losses

PERCENTILES = (0.15, 0.50, 0.85)  # Figure 1(b, c)


@dataclass(frozen=True)
class Schedule:
    steps: int
    batch_size: int
    eval_every: int
    momentum: float
    learning_rates: Sequence[float]  # one per member
    data_seeds: Sequence[int]  # one per member; all equal: one shared data order (common random numbers)

    @property
    def eval_steps(self) -> list[int]:
        """Step 0 (the initial network), every eval_every steps, and the last step."""
        return sorted({*range(0, self.steps, self.eval_every), self.steps})


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of every member, as host values; handed to `on_eval`."""

    step: int
    accuracy: list[float]
    loss: list[float]
    diverged: list[bool]


@dataclass
class TrainResult:
    model: MLP
    history: list[dict] = field(default_factory=list)  # {step, member, accuracy, loss, diverged}
    sigmoid_inputs: list[dict] = field(default_factory=list)  # {step, member, unit, p15, p50, p85}
    diverged: list[bool] = field(default_factory=list)
    stopped: list[bool] = field(default_factory=list)
    wall_time_s: float = 0.0


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; a named device must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(name, False):
        usable = ", ".join(["auto", *(device for device, ok in available.items() if ok)])
        raise ValueError(f"train.device: '{name}' is not available on this machine (usable here: {usable})")
    return torch.device(name)


class BatchOrder:
    """Mini-batch indices, one epoch at a time: one shuffled order shared by all members, or one per member."""

    def __init__(self, examples: int, batch_size: int, data_seeds: Sequence[int], device: torch.device):
        if examples < batch_size:
            raise ValueError(f"the training split has {examples} examples, fewer than one batch of {batch_size}")
        self.shared = len(set(data_seeds)) == 1
        self._generators = [
            torch.Generator().manual_seed(seed) for seed in (data_seeds[:1] if self.shared else data_seeds)
        ]
        self._examples, self._batch_size, self._device = examples, batch_size, device
        self._batches_per_epoch = examples // batch_size  # the remainder of an epoch is dropped

    def _epoch(self) -> torch.Tensor:
        usable = self._batches_per_epoch * self._batch_size
        orders = torch.stack([torch.randperm(self._examples, generator=g)[:usable] for g in self._generators])
        # (members, batches, batch) -> (batches, members, batch): one slice per step
        orders = orders.view(len(self._generators), self._batches_per_epoch, self._batch_size).transpose(0, 1)
        return (orders[:, 0] if self.shared else orders).contiguous().to(self._device)

    def batches(self, count: int) -> Iterator[torch.Tensor]:
        """`count` index tensors: (batch,) when shared, else (members, batch)."""
        while count > 0:
            epoch = self._epoch()
            yield from epoch[: min(count, len(epoch))]
            count -= len(epoch)


@torch.no_grad()
def evaluate(model: MLP, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """Accuracy and mean cross-entropy of every member on `split`, as (K,) device tensors."""
    was_training = model.training
    model.eval()
    logits = model(split.images)
    loss = member_losses(logits, split.labels)
    accuracy = (logits.argmax(dim=-1) == split.labels).float().mean(dim=-1)
    model.train(was_training)
    return accuracy, loss


@torch.no_grad()
def sigmoid_input_percentiles(model: MLP, probe_images: torch.Tensor, units: int) -> torch.Tensor:
    """(len(PERCENTILES), K, units): percentiles over the probe examples of the first `units` last-layer sigmoids."""
    was_training = model.training
    model.eval()
    inputs = model.last_hidden_inputs(probe_images)[..., :units]  # (K, examples, units)
    model.train(was_training)
    levels = torch.tensor(PERCENTILES, device=inputs.device, dtype=inputs.dtype)
    return torch.quantile(inputs, levels, dim=1)


def train_members(
    model: MLP,
    train: Split,
    evaluation: Split,
    schedule: Schedule,
    *,
    probe_images: torch.Tensor | None = None,
    tracked_units: int = 0,
    on_eval: Callable[[Evaluation], Sequence[bool] | None] | None = None,
    progress: bool | None = None,
    population_stats: str = "moving_average",
    population_batches: int = 500,
) -> TrainResult:
    """Train every member of `model` by plain SGD (optionally with momentum) on its own learning rate.

    A member whose loss turns NaN or infinite is marked diverged and frozen at its last finite weights;
    `on_eval` may return a mask of members to stop (pruned trials), which are frozen the same way.
    With population_stats="full_pass", BN's inference statistics are recomputed after training per
    Algorithm 2 and the last evaluation is redone with them; the curves before it use the moving averages.
    """
    members = model.members
    if len(schedule.learning_rates) != members or len(schedule.data_seeds) != members:
        raise ValueError(f"the schedule needs one learning rate and one data seed per member ({members})")
    device = train.images.device
    started = time.perf_counter()
    learning_rates = torch.tensor(schedule.learning_rates, device=device, dtype=train.images.dtype)
    active = torch.ones(members, dtype=torch.bool, device=device)  # not diverged and not stopped
    finite = torch.ones(members, dtype=torch.bool, device=device)

    eval_steps = schedule.eval_steps
    accuracy_log = torch.empty(len(eval_steps), members, device=device)
    loss_log = torch.empty(len(eval_steps), members, device=device)
    finite_log = torch.empty(len(eval_steps), members, dtype=torch.bool, device=device)
    track = probe_images is not None and tracked_units > 0
    percentile_log = torch.empty(len(eval_steps), len(PERCENTILES), members, max(tracked_units, 1), device=device)

    def record(index: int) -> None:
        accuracy_log[index], loss_log[index] = evaluate(model, evaluation)
        finite_log[index] = finite
        if track:
            percentile_log[index] = sigmoid_input_percentiles(model, probe_images, tracked_units)

    order = BatchOrder(len(train.labels), schedule.batch_size, schedule.data_seeds, device)
    show = sys.stderr.isatty() if progress is None else progress
    stopped = [False] * members
    model.train()
    record(0)
    with (
        weight_descent(model, schedule.momentum) as descent,
        tqdm(total=schedule.steps, desc="training", unit="step", disable=not show, leave=False) as bar,
    ):
        # the affine weights are stepped inside the backward pass; the small rest (biases, BN's γ, β) here
        others = [p for p in model.parameters() if all(p is not weight for weight in descent.weights)]
        velocities = [torch.zeros_like(p) for p in others] if schedule.momentum else None
        member_shapes = [(members,) + (1,) * (p.dim() - 1) for p in others]  # broadcast a (K,) vector over p
        step = 0
        for index, next_eval in enumerate(eval_steps[1:], start=1):
            for indices in order.batches(next_eval - step):
                images, labels = _gather(train, indices)
                logits = model(images)
                losses = member_losses(logits, labels)
                finite &= torch.isfinite(losses)
                active &= finite
                descent.step_sizes = learning_rates * active
                model.zero_grad(set_to_none=True)
                losses.sum().backward()
                _sgd_step(others, velocities, descent.step_sizes, schedule.momentum, member_shapes)
            bar.update(next_eval - step)
            step = next_eval
            record(index)
            if on_eval is not None or show:
                report = Evaluation(
                    step=step,
                    accuracy=accuracy_log[index].tolist(),
                    loss=loss_log[index].tolist(),
                    diverged=(~finite_log[index]).tolist(),
                )
                bar.set_postfix(best_accuracy=f"{max(report.accuracy):.4f}")
                stop = on_eval(report) if on_eval is not None else None
                if stop is not None:
                    stopped = [was or now for was, now in zip(stopped, stop, strict=True)]
                    active &= ~torch.tensor(stopped, device=device)

    if population_stats == "full_pass" and model.batch_norm:
        _population_pass(model, train, schedule, population_batches)
        record(len(eval_steps) - 1)

    return _collect(
        model, eval_steps, accuracy_log, loss_log, finite_log, percentile_log if track else None, stopped, started
    )


def _gather(split: Split, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mini-batch at `indices`, (batch,) or (members, batch); index_select is ~3× faster than x[indices]."""
    flat = indices.reshape(-1)
    images = split.images.index_select(0, flat).view(*indices.shape, split.images.shape[-1])
    return images, split.labels.index_select(0, flat).view(indices.shape)


def _sgd_step(parameters, velocities, learning_rates, momentum, member_shapes) -> None:
    with torch.no_grad():
        for position, parameter in enumerate(parameters):
            # a frozen member has learning rate 0; its gradient may be NaN, and 0 × NaN is still NaN
            gradient = parameter.grad.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
            if velocities is not None:
                gradient = velocities[position].mul_(momentum).add_(gradient)
            parameter.addcmul_(gradient, learning_rates.view(member_shapes[position]), value=-1.0)


def _population_pass(model: MLP, train: Split, schedule: Schedule, batches: int) -> None:
    """Algorithm 2: inference statistics from `batches` training mini-batches of the trained network."""
    order = BatchOrder(len(train.labels), schedule.batch_size, schedule.data_seeds, train.images.device)
    with population_statistics(model):
        for indices in order.batches(batches):
            model(_gather(train, indices)[0])


def _collect(model, eval_steps, accuracy_log, loss_log, finite_log, percentile_log, stopped, started) -> TrainResult:
    accuracy, loss, finite = accuracy_log.tolist(), loss_log.tolist(), finite_log.tolist()
    history = [
        {
            "step": step,
            "member": member,
            "accuracy": accuracy[i][member],
            "loss": loss[i][member],
            "diverged": not finite[i][member],
        }
        for i, step in enumerate(eval_steps)
        for member in range(model.members)
    ]
    sigmoid_inputs = []
    if percentile_log is not None:
        values = percentile_log.tolist()  # (evals, percentiles, members, units)
        sigmoid_inputs = [
            {
                "step": step,
                "member": member,
                "unit": unit,
                **{f"p{round(q * 100)}": values[i][j][member][unit] for j, q in enumerate(PERCENTILES)},
            }
            for i, step in enumerate(eval_steps)
            for member in range(model.members)
            for unit in range(percentile_log.shape[-1])
        ]
    return TrainResult(
        model=model,
        history=history,
        sigmoid_inputs=sigmoid_inputs,
        diverged=[not ok for ok in finite[-1]],
        stopped=stopped,
        wall_time_s=time.perf_counter() - started,
    )
