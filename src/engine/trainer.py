"""The training engine: K members (seeds, learning rates, inits) trained at once as one vectorised computation.

The data sit on the device as tensors and mini-batches are drawn by index; every member has its own learning rate;
one optimizer (sgd.MemberSGD) steps every parameter, the affine weights inside the backward pass and the few others
after it; evaluation results stay on the device until an evaluation is reported, so the step loop never waits for
the host. A noisy BN net's noise is drawn once per step, before its forward (`MLP.redraw_noise`). A `Trainer` can be
saved and restored between any two steps (`state_dict`, with the noise generators), and a restored one continues bit
for bit. Tracking, tuning and checkpoint files wrap this module from outside: it knows nothing of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from src.data.splits import Split
from src.engine.batches import BatchOrder, gather
from src.engine.batchnorm import population_statistics
from src.engine.clock import PhaseClock
from src.engine.network import MLP, member_losses
from src.engine.progress import Output, Progress
from src.engine.schedule import Schedule
from src.engine.scoring import score_members, sigmoid_input_percentiles
from src.engine.sgd import MemberSGD

PERCENTILES = (0.15, 0.50, 0.85)  # Figure 1(b, c)
LEVELS = tuple(f"p{round(q * 100)}" for q in PERCENTILES)  # their names in files and metrics: p15, p50, p85


@dataclass(frozen=True)
class TrainingData:
    train: Split
    evaluation: Split  # scored at every evaluation step (the test split in training, validation in tuning)
    probe_images: Tensor | None = None  # where the last hidden layer's sigmoid inputs are recorded (Figure 1 b, c)
    tracked_units: int = 0


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of every member, as host values; handed to `on_eval`."""

    step: int
    accuracy: list[float]
    loss: list[float]
    diverged: list[bool]


@dataclass(frozen=True)
class TrainingHistory:
    """Every evaluation of every member. The curves use BN's moving averages at every point (the statistics a
    network has while it trains); `final` scores the trained network under Algorithm 2's population statistics."""

    eval_steps: tuple[int, ...]
    accuracy: np.ndarray  # (evals, K)
    loss: np.ndarray  # (evals, K)
    diverged: np.ndarray  # (evals, K): diverged at or before that evaluation
    percentiles: np.ndarray | None  # (evals, len(PERCENTILES), K, tracked units)
    final: Evaluation | None  # None while training goes on
    wall_time_s: float  # training: the steps, evaluations, percentile tracking and Algorithm 2's population pass


OnEval = Callable[[Evaluation], Sequence[bool] | None]


class Trainer:
    """Trains every member of `model` by plain SGD (optionally with momentum) on its own learning rate.

    A member whose loss turns NaN or infinite is marked diverged and frozen at its last finite weights; `on_eval`
    may return a mask of members to stop (pruned trials), which are frozen the same way. After the last step BN's
    inference statistics are set by Algorithm 2 and the model is left in eval mode. `fused=False` has autograd write
    every ∂ℓ/∂W and steps every parameter from `.grad` (the benchmark's baseline): the same networks up to rounding.
    """

    def __init__(self, model: MLP, data: TrainingData, schedule: Schedule, *, fused: bool = True):
        members = model.members
        if len(schedule.learning_rates) != members or members % len(schedule.data_seeds):
            raise ValueError(
                f"the schedule needs one learning rate per member ({members}) and a number of data seeds that "
                f"divides it, got {len(schedule.learning_rates)} and {len(schedule.data_seeds)}"
            )
        if schedule.eval_steps[0] != 0 or schedule.eval_steps[-1] != schedule.steps:
            raise ValueError(f"eval_steps must run from 0 to {schedule.steps}, got {schedule.eval_steps}")
        self.model, self.data, self.schedule = model, data, schedule
        device = data.train.images.device
        self.step = 0
        self._evaluations = 0  # how many of schedule.eval_steps are recorded
        self.clock = PhaseClock(data.train.images.device)  # the stage around the trainer times its phases here too
        self._finite = torch.ones(members, dtype=torch.bool, device=device)
        self._stopped = torch.zeros(members, dtype=torch.bool, device=device)
        evals, units = len(schedule.eval_steps), max(data.tracked_units, 1)
        self._accuracy = torch.full((evals, members), math.nan, device=device)
        self._loss = torch.full((evals, members), math.nan, device=device)
        self._diverged = torch.zeros(evals, members, dtype=torch.bool, device=device)
        self._percentiles = torch.full((evals, len(PERCENTILES), members, units), math.nan, device=device)
        self._order = BatchOrder(len(data.train.labels), schedule.batch_size, schedule.data_seeds, device)
        learning_rates = torch.tensor(schedule.learning_rates, device=device, dtype=data.train.images.dtype)
        self._sgd = MemberSGD(model, learning_rates, schedule.momentum, fused=fused)

    @property
    def _tracking(self) -> bool:
        return self.data.probe_images is not None and self.data.tracked_units > 0

    def run(
        self,
        on_eval: OnEval | None = None,
        on_checkpoint: Callable[[Trainer], None] | None = None,
        checkpoint_every: int | None = None,
        progress: bool | None = None,
        label: str = "training",
    ) -> TrainingHistory:
        """Train to the last step from wherever this trainer is; `on_checkpoint(self)` every checkpoint_every steps.
        Progress under `label` (src/progress.py): a bar on a terminal, else a line at a steady pace; none if False."""
        self.model.train()
        if self._evaluations == 0:
            self._record()
        with (
            self._sgd.attached(),
            Progress(
                label,
                self.schedule.steps,
                done=self.step,
                members=self.model.members,
                output=Output(show=progress),
            ) as bar,
        ):
            while self.step < self.schedule.steps:
                next_eval = self.schedule.eval_steps[self._evaluations]
                stop = (
                    next_eval if not checkpoint_every else min(next_eval, _next_multiple(self.step, checkpoint_every))
                )
                with self.clock.phase("steps"):
                    self._train_until(stop)
                if self.step == next_eval:
                    self._record()
                    self._report(bar, on_eval)
                bar.update_to(self.step)
                due = checkpoint_every and self.step % checkpoint_every == 0 and self.step < self.schedule.steps
                if on_checkpoint is not None and due:
                    on_checkpoint(self)  # the caller times its checkpoints on this clock
        final = self._finish()
        return self._result(final)

    def _train_until(self, stop: int) -> None:
        model, train = self.model, self.data.train
        while self.step < stop:
            images, labels = gather(train, self._order.next())
            if model.noisy:
                model.redraw_noise(self.schedule.batch_size)
            losses = member_losses(model(images), labels)
            self._finite &= torch.isfinite(losses)
            self._sgd.step(losses, live=self._finite & ~self._stopped)
            self.step += 1

    def _record(self) -> None:
        index = self._evaluations
        with self.clock.phase("evaluation"):
            self._accuracy[index], self._loss[index] = score_members(self.model, self.data.evaluation)
            self._diverged[index] = ~self._finite
        if self._tracking:
            with self.clock.phase("percentiles"):
                self._percentiles[index] = sigmoid_input_percentiles(
                    self.model, self.data.probe_images, self.data.tracked_units, PERCENTILES
                )
        self._evaluations += 1

    def _report(self, bar: Progress, on_eval: OnEval | None) -> None:
        index = self._evaluations - 1
        evaluation = Evaluation(
            step=self.step,
            accuracy=self._accuracy[index].tolist(),
            loss=self._loss[index].tolist(),
            diverged=self._diverged[index].tolist(),
        )
        bar.note = f"best accuracy {max(evaluation.accuracy):.4f}"
        stop = on_eval(evaluation) if on_eval is not None else None
        if stop is not None:
            self._stopped |= torch.tensor(list(stop), dtype=torch.bool, device=self._stopped.device)

    def _finish(self) -> Evaluation:
        """Algorithm 2 for BN, then the final evaluation under it (for the vanilla net: the last evaluation)."""
        if self.model.batch_norm:
            train = self.data.train
            order = BatchOrder(len(train.labels), self.schedule.batch_size, self.schedule.data_seeds, self._device)
            with self.clock.phase("population"), population_statistics(self.model):
                for _ in range(self.schedule.population_batches):
                    self.model.features(gather(train, order.next())[0])  # the BN layers see it; logits are not needed
            with self.clock.phase("evaluation"):
                accuracy, loss = score_members(self.model, self.data.evaluation)
        else:
            accuracy, loss = self._accuracy[-1], self._loss[-1]
        self.model.eval()
        return Evaluation(
            step=self.schedule.steps,
            accuracy=accuracy.tolist(),
            loss=loss.tolist(),
            diverged=(~self._finite).tolist(),
        )

    @property
    def _device(self) -> torch.device:
        return self.data.train.images.device

    def recorded(self) -> TrainingHistory:
        """The evaluations recorded so far (no final one yet): what a checkpoint hands to the tracker."""
        return self._result(final=None)

    def _result(self, final: Evaluation | None) -> TrainingHistory:
        done = self._evaluations
        return TrainingHistory(
            eval_steps=self.schedule.eval_steps[:done],
            accuracy=self._accuracy[:done].cpu().numpy(),
            loss=self._loss[:done].cpu().numpy(),
            diverged=self._diverged[:done].cpu().numpy(),
            percentiles=self._percentiles[:done].cpu().numpy() if self._tracking else None,
            final=final,
            wall_time_s=self.clock.total(),
        )

    def state_dict(self) -> dict:
        """Everything that decides the rest of the run, copied to the CPU: restoring it continues bit for bit."""
        return {
            "step": self.step,
            "evaluations": self._evaluations,
            "phase_s": dict(self.clock.seconds),
            "model": {name: _copy(value) for name, value in self.model.state_dict().items()},
            "velocities": [_copy(velocity) for velocity in self._sgd.velocities],
            "order": self._order.state_dict(),
            **{name: _copy(tensor) for name, tensor in self._state_tensors().items()},
            # a noisy net's only: the states of the other nets stay as they were
            **({"noise_generators": self.model.noise_draws.state_dict()} if self.model.noisy else {}),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a `state_dict` of a trainer with the same model shape and schedule; a misfit raises ValueError
        and leaves this trainer as it was."""
        tensors = self._state_tensors()
        for name, current in tensors.items():
            if state[name].shape != current.shape or state[name].dtype != current.dtype:
                raise ValueError(f"{name}: {tuple(state[name].shape)}, expected {tuple(current.shape)}")
        if [v.shape for v in self._sgd.velocities] != [v.shape for v in state["velocities"]]:
            raise ValueError("the optimizer state does not fit this model")
        if len(state["order"]["generators"]) != len(self.schedule.data_seeds):
            raise ValueError(
                f"a batch order of {len(state['order']['generators'])} data seeds, "
                f"expected {len(self.schedule.data_seeds)}"
            )
        expected = {name: value.shape for name, value in self.model.state_dict().items()}
        if {name: value.shape for name, value in state["model"].items()} != expected:
            raise ValueError("the model state does not fit this model (other parameters or shapes)")
        if ("noise_generators" in state) != self.model.noisy:
            raise ValueError("the noise state does not fit this model (a noisy BN net's state and another net's)")
        if self.model.noisy:
            self.model.noise_draws.load_state_dict(state["noise_generators"])
        self.model.load_state_dict(state["model"])
        for name, current in tensors.items():
            current.copy_(state[name])
        for velocity, saved in zip(self._sgd.velocities, state["velocities"], strict=True):
            velocity.copy_(saved)
        self._order.load_state_dict(state["order"])
        self.step, self._evaluations = state["step"], state["evaluations"]
        self.clock.seconds = dict(state["phase_s"])

    def _state_tensors(self) -> dict[str, Tensor]:
        """The tensors a checkpoint saves by name, besides the model and the velocities: the live ones, not copies."""
        return {
            "learning_rates": self._sgd.learning_rates,
            "finite": self._finite,
            "stopped": self._stopped,
            "accuracy": self._accuracy,
            "loss": self._loss,
            "diverged": self._diverged,
            "percentiles": self._percentiles,
        }


def _copy(tensor: Tensor) -> Tensor:
    # a copy even on the CPU, where .cpu() would hand out the live tensor
    return tensor.detach().to("cpu", copy=True)


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every
