"""A tiny, made-up repository state for the evaluate stage: what tune, train and sweep would have left behind.

The outcome is known in advance, and every claim holds:
- train@ (the curves and sigmoid inputs are made up): BN reaches 97 % in fewer steps than vanilla, and its sigmoid
  inputs stay where they started while vanilla's drift (more the higher the seed).
- train@ (the models are real): each variant is trained for a few steps at its tuned rate on the synthetic split.
  BN learns the ten prototypes in that time, vanilla is still near chance, so BN's final accuracy is the higher.
- sweep@ (made up, on a grid of 3 rates × 2 init stds × 3 seeds; see SWEEP_FINAL): BN trains in every cell.
  Vanilla diverges at the largest rate and stays at chance with init std 1.0, so BN's largest usable rate is 10×
  vanilla's and its worst-init accuracy is far higher. The robustness map has BN better in 4 cells, worse in 1
  (vanilla's best cell) and neither in 1. The horizon check: vanilla's tuned rate is nearest its best swept rate;
  BN's (5 → nearest 10) is not, its best swept rate being 1.

The writers of src/results.py write the train@ and sweep@ CSVs, so the files have the layout the readers expect.

`outcome` and `swept` build one variant's train@ outcome and sweep in memory, for the unit tests of the per-seed
numbers and the claims.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import yaml

from src import results
from src.comparison import Comparison, compare
from src.config import Params, load_params, parse_params
from src.data import load_split
from src.engine import Evaluation, Trainer, TrainingData, TrainResult
from src.members import MemberTable
from src.models import build_model, predict_members
from src.outcomes import Scores, TunedOutcome, edge_brackets
from src.schedule import Schedule, eval_schedule
from tests import synthetic

SEEDS = list(range(10))  # as many as the study's: an exact sign-flip test over fewer cannot pass a family's correction
STEPS = np.arange(0, 1100, 100)
UNITS = 2
# time constants of 1 − 0.9 exp(−step / τ): BN gets there sooner, and a little higher
TIME_CONSTANT = {"vanilla": 250.0, "bn": 100.0}
CEILING = {"vanilla": 0.975, "bn": 0.985}
LEARNING_RATES = {"vanilla": 0.5, "bn": 5.0}
MODEL_STEPS = 20  # enough for BN to learn the synthetic prototypes, not for vanilla

SWEEP_RATES = (0.1, 1.0, 10.0)
SWEEP_INIT_STDS = (0.1, 1.0)
# sweep@'s final test accuracy per init std, one per swept rate; None: the run diverges (DIVERGED_ACCURACY)
SWEEP_FINAL = {
    "vanilla": {0.1: (0.97, 0.985, None), 1.0: (0.10, 0.10, None)},
    "bn": {0.1: (0.97, 0.975, 0.965), 1.0: (0.96, 0.965, 0.955)},
}
DIVERGED_ACCURACY = 0.098
# per seed, added to every cell that does not diverge: the paired differences have a spread, except where one is flat
SWEEP_NOISE = {variant: tuple(np.random.default_rng(len(variant)).normal(0, 0.001, len(SEEDS)).round(4))
               for variant in ("vanilla", "bn")}  # fmt: skip
SWEEP_DIVERGES_AT = 100  # the step from which a diverging sweep run is marked diverged


def tiny_params(repo_root: Path) -> dict:
    """The repository's params.yaml shrunk to a two-layer, eight-unit net, a 3 × 2 × 3 sweep, targets to match."""
    raw = copy.deepcopy(yaml.safe_load((repo_root / "params.yaml").read_text()))
    raw["model"].update(hidden_layers=2, hidden_units=8, init_std=0.1, population_batches=2)
    raw["train"].update(steps=int(STEPS[-1]), seeds=len(SEEDS), tracked_units=UNITS, eval_every=100, evals_per_decade=0)
    raw["sweep"].update(
        lr_min=SWEEP_RATES[0], lr_max=SWEEP_RATES[-1], lrs_per_decade=1, init_stds=list(SWEEP_INIT_STDS),
        seeds=len(SEEDS), steps=200, eval_every=50, evals_per_decade=0, checkpoint_every=100,
    )  # fmt: skip
    raw["evaluate"].update(
        accuracy_targets=[0.9, 0.95, 0.99], usable_accuracy=0.9, resamples=999,
        figure1_lrs=[1.0, 10.0],  # where vanilla trains and where it diverges
        confidence=0.95,
    )  # fmt: skip
    raw["edge"].update(init_stds=list(SWEEP_INIT_STDS))
    return raw


def accuracy_curve(variant: str, seed: int) -> np.ndarray:
    noise = np.random.default_rng([seed, len(variant)]).normal(0, 0.002, STEPS.shape)
    curve = 1 - 0.9 * np.exp(-STEPS / TIME_CONSTANT[variant]) + noise
    return np.minimum(curve, CEILING[variant] + noise)


def write_results_tree(root: Path, repo_root: Path) -> dict:
    """Write params.yaml, data/processed, models/ and results/{tune,train,sweep}/ under `root`; return params."""
    raw = tiny_params(repo_root)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    params = parse_params(raw)
    processed = synthetic.write_processed(root / "data" / "processed", {"train": 300, "val": 100, "test": 200})
    for variant in ("vanilla", "bn"):
        final = _write_models(root / results.MODELS / variant, params, processed, variant)
        _write_training(root / results.stage_dir("train", variant), params, variant, final)
        _write_tuning(root / results.stage_dir("tune", variant), variant)
        write_sweep(root / results.stage_dir("sweep", variant), params, variant)
    return raw


def comparison_of(root: Path) -> Comparison:
    """`compare` on the tree under `root` (it reads its inputs relative to the working directory)."""
    with contextlib.chdir(root):
        return compare(load_params())


def _write_models(directory: Path, params: Params, processed: Path, variant: str) -> Evaluation:
    """Train each seed's model MODEL_STEPS steps at the variant's tuned rate, save it; its final test scores."""
    train = load_split(processed, "train", torch.device("cpu"), params.data.binarize)
    test = load_split(processed, "test", torch.device("cpu"), params.data.binarize)
    model = build_model(params.model, variant, SEEDS, "cpu")
    schedule = Schedule(
        steps=MODEL_STEPS, batch_size=params.train.batch_size, eval_steps=(0, MODEL_STEPS), momentum=0.0,
        learning_rates=(LEARNING_RATES[variant],) * len(SEEDS), data_seeds=tuple(SEEDS),
        population_batches=params.model.population_batches,
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small only waits for a second thread
    try:
        final = Trainer(model, TrainingData(train, test), schedule).run(progress=False).final
    finally:
        torch.set_num_threads(threads)
    results.write_models(directory, [model.member_state_dict(member) for member in range(len(SEEDS))], SEEDS)
    predicted = predict_members(model, test).numpy()
    members = MemberTable.tuned(LEARNING_RATES[variant], params.model.init_std, SEEDS)
    results.write_predictions(directory.parent.parent / results.stage_dir("train", variant), predicted, members)
    return final


def _write_training(directory: Path, params: Params, variant: str, final: Evaluation) -> None:
    accuracy = np.stack([accuracy_curve(variant, seed) for seed in SEEDS], axis=1)  # (evals, seeds)
    # vanilla: the median slides down and the spread widens, more for a higher seed; BN: the distribution stays
    amount = np.array([1 + 0.2 * seed if variant == "vanilla" else 0.01 * (seed % 3) for seed in SEEDS])
    d = (STEPS / STEPS[-1])[:, None] * amount  # (evals, seeds)
    percentiles = np.stack(
        [np.stack([-1 - 3 * d - unit, -2 * d, 1 + d], axis=1) for unit in range(UNITS)], axis=-1
    )  # (evals, levels, seeds, units)
    result = _train_result(STEPS, accuracy, np.zeros(accuracy.shape, dtype=bool), percentiles, final)
    members = MemberTable.tuned(LEARNING_RATES[variant], params.model.init_std, SEEDS)
    results.write_history(directory, result, members)
    results.write_sigmoid_inputs(directory, result, members)
    results.TrainSummary(
        variant=variant,
        lr=LEARNING_RATES[variant],
        lr_source="tune",
        seeds=SEEDS,
        steps=int(STEPS[-1]),
        batch_size=params.train.batch_size,
        final_test_accuracy=final.accuracy,
        final_test_accuracy_mean=float(np.mean(final.accuracy)),
        final_test_accuracy_std=float(np.std(final.accuracy, ddof=1)),
        final_val_accuracy=final.accuracy,
        champion_seed=SEEDS[0],
        n_diverged=0,
        device="cpu",
    ).write(directory)


def sweep_final_accuracy(variant: str) -> np.ndarray:
    """(seeds, init stds, rates): sweep@'s final test accuracy as written, noise included."""
    table = np.array(
        [[DIVERGED_ACCURACY if a is None else a for a in SWEEP_FINAL[variant][std]] for std in SWEEP_INIT_STDS]
    )
    noise = np.array(SWEEP_NOISE[variant])[:, None, None] * ~sweep_diverged(variant)  # a diverged run is flat
    return table[None] + noise


def sweep_diverged(variant: str) -> np.ndarray:
    """(init stds, rates): which sweep@ runs diverge."""
    return np.array([[a is None for a in SWEEP_FINAL[variant][std]] for std in SWEEP_INIT_STDS])


def write_sweep(directory: Path, params: Params, variant: str) -> None:
    """results/sweep/<variant>/{history,sigmoid_inputs,final}.csv and summary.json: params' sweep grid, one member
    per cell in the order the sweep stage trains them (MemberTable.grid)."""
    members = MemberTable.grid(params.sweep)
    steps = np.array(eval_schedule(params.sweep.steps, params.sweep.eval_every, params.sweep.evals_per_decade))
    final_table, diverged_table = sweep_final_accuracy(variant), sweep_diverged(variant)
    cells = [
        (SEEDS.index(seed), SWEEP_INIT_STDS.index(init_std), _rate_index(lr))
        for lr, init_std, seed in zip(members.lr, members.init_std, members.seed, strict=True)
    ]
    final = np.array([final_table[cell] for cell in cells])  # (members,)
    diverges = np.array([diverged_table[cell[1:]] for cell in cells])
    # the curves rise towards the final accuracy; a diverging run is flat at DIVERGED_ACCURACY from its divergence
    rising = 1 - np.exp(-steps / 50.0)[:, None]
    accuracy = 0.1 + (final - 0.1) * rising  # (evals, members)
    diverged = diverges & (steps[:, None] >= SWEEP_DIVERGES_AT)
    accuracy[diverged] = DIVERGED_ACCURACY
    # BN's sigmoid inputs stay put; vanilla's drift the more, the higher its learning rate
    rate = np.array([1 + cell[2] for cell in cells])
    jitter = np.array([0.01 * (cell[0] % 3) for cell in cells])  # per seed: the paired drifts have a spread
    d = (steps / steps[-1])[:, None] * ((rate if variant == "vanilla" else 0.0) + jitter)
    percentiles = np.stack([np.stack([-1 - d - unit, -d, 1 + d], axis=1) for unit in range(UNITS)], axis=-1)
    evaluation = Evaluation(
        step=int(steps[-1]),
        accuracy=final.tolist(),
        loss=[float("nan") if bad else 2.3 * (1 - a) for a, bad in zip(final, diverges, strict=True)],
        diverged=diverges.tolist(),
    )
    result = _train_result(steps, accuracy, diverged, percentiles, evaluation)
    results.write_history(directory, result, members)
    results.write_sigmoid_inputs(directory, result, members)
    results.write_final(directory, evaluation, members)
    results.write_predictions(directory, _predictions(final, variant), members)
    results.SweepSummary(variant=variant, members=len(members), steps=params.sweep.steps, device="cpu").write(directory)
    _write_edge(directory.parent.parent / "edge" / variant, params, variant, final, diverges)


def _predictions(final: np.ndarray, variant: str) -> np.ndarray:
    """(members, test images): each member right on a share `final` of the synthetic test split, wrong elsewhere."""
    labels = synthetic.images_and_labels(200, seed=2)[1]
    right = np.random.default_rng(len(variant)).random((len(final), len(labels))) < final[:, None]
    return np.where(right, labels, (labels + 1) % 10).astype(np.uint8)


def _write_edge(directory: Path, params: Params, variant: str, final: np.ndarray, diverged: np.ndarray) -> None:
    """edge@: every refined rate trains below the geometric middle of its bracket and diverges above it."""
    shape = (len(SEEDS), len(SWEEP_INIT_STDS), len(SWEEP_RATES))
    brackets = edge_brackets(final.reshape(shape), diverged.reshape(shape), params)
    members = MemberTable.refining(brackets, params.edge.rates_between)
    middle = {(seed, std): (low * high) ** 0.5 for seed, std, low, high in brackets}
    trains = [lr <= middle[(seed, std)] for lr, std, seed in zip(members.lr, members.init_std, members.seed, strict=True)]
    evaluation = Evaluation(step=params.sweep.steps, accuracy=[0.95 if ok else DIVERGED_ACCURACY for ok in trains],
                            loss=[0.2 if ok else float("nan") for ok in trains], diverged=[not ok for ok in trains])  # fmt: skip
    results.write_final(directory, evaluation, members)


def _rate_index(lr: float) -> int:
    return int(np.argmin(np.abs(np.log(SWEEP_RATES) - np.log(lr))))


def _train_result(steps, accuracy, diverged, percentiles, final: Evaluation) -> TrainResult:
    """What the engine would have returned: accuracy and diverged (evals, members), percentiles (evals, 3, K, units)."""
    loss = np.where(diverged, np.nan, 2.3 * (1 - accuracy))
    return TrainResult(
        eval_steps=tuple(int(step) for step in steps),
        accuracy=accuracy,
        loss=loss,
        diverged=diverged,
        percentiles=percentiles,
        final=final,
        wall_time_s=1.0,
    )


def _write_tuning(directory: Path, variant: str) -> None:
    # vanilla diverges from lr 5 on, BN only at 50; a failed trial has no value
    lrs = [0.05, 0.5, 5.0, 20.0, 50.0]
    diverges_from = 5.0 if variant == "vanilla" else 50.0
    trials = []
    for number, lr in enumerate(lrs):
        diverged = lr >= diverges_from
        state = "PRUNED" if diverged or number == 0 else "COMPLETE"
        trials.append(results.TuningTrial(number, lr, 0.098 if diverged else 0.9 + 0.01 * number, state, diverged))
    trials.append(results.TuningTrial(len(lrs), 1.0, None, "FAIL", False))
    results.write_trials(directory, trials)
    results.TuningSummary(
        variant=variant,
        study_name=f"bn-mnist-{variant}",
        storage="sqlite:///optuna.db",
        best_lr=LEARNING_RATES[variant],
        best_value=0.93,
        trials_budget=len(trials),
        n_complete=sum(trial.state == "COMPLETE" for trial in trials),
        n_pruned=sum(trial.state == "PRUNED" for trial in trials),
        n_failed=1,
        steps=100,  # tuned on fewer steps than the sweep runs: what the horizon check is for
        device="cpu",
    ).write(directory)


# --- in memory: one variant's train@ outcome and sweep ----------------------------------------------------------


def outcome(
    steps: np.ndarray,
    accuracy: np.ndarray,
    final_accuracy: Sequence[float],
    drift: Sequence[float],
    seeds: Sequence[int] | None = None,
) -> TunedOutcome:
    """A train@ outcome: per seed, the test accuracy curve accuracy[s] over `steps`, the saved model's test accuracy
    final_accuracy[s], and one tracked sigmoid whose input drifts by drift[s] (see `drifting`). What the claims do
    not read (the tuning study, the training summary, the training split's scores, the losses) is left out."""
    accuracy = np.asarray(accuracy, dtype=float)
    seeds = list(range(len(accuracy))) if seeds is None else list(seeds)
    curves = results.Curves(
        steps=np.asarray(steps),
        seeds=seeds,
        accuracy=accuracy,
        loss=np.full(accuracy.shape, math.nan),
        diverged=np.zeros(len(seeds), dtype=bool),
    )
    return TunedOutcome(
        variant="bn",
        tuning=None,
        trials=[],
        training=None,
        curves=curves,
        sigmoid_inputs={(seed, 0): drifting(steps, d) for seed, d in zip(seeds, drift, strict=True)},
        test={seed: Scores(a, math.nan, np.zeros((10, 10))) for seed, a in zip(seeds, final_accuracy, strict=True)},
        train={},
    )


def drifting(steps: np.ndarray, relative_drift: float) -> results.Percentiles:
    """A sigmoid input with a 15–85th spread of 2 that moves as a whole by 2 × `relative_drift` at the last step, so
    its relative drift is `relative_drift` (≥ 0, or NaN); an infinite one has no spread at all."""
    steps = np.asarray(steps)
    if math.isinf(relative_drift):
        flat = np.zeros(steps.shape)
        return results.Percentiles(steps, flat, flat, flat)
    shift = np.zeros(steps.shape)
    shift[-1] = 2 * relative_drift
    return results.Percentiles(steps, -1 + shift, shift, 1 + shift)


def swept(
    final_accuracy: np.ndarray, learning_rates: Sequence[float], init_stds: Sequence[float], diverged=None
) -> results.SweepResults:
    """A sweep of the given (seeds, init stds, rates) final accuracies; no curves."""
    final_accuracy = np.asarray(final_accuracy, dtype=float)
    shape = final_accuracy.shape
    return results.SweepResults(
        learning_rates=np.asarray(learning_rates, dtype=float),
        init_stds=np.asarray(init_stds, dtype=float),
        seeds=list(range(shape[0])),
        final_accuracy=final_accuracy,
        diverged=np.zeros(shape, dtype=bool) if diverged is None else np.asarray(diverged, dtype=bool),
        steps=np.array([0, 100]),
        accuracy=np.full((*shape, 2), np.nan),
        percentiles=np.full((*shape, 1, 3, 2), np.nan),
    )
