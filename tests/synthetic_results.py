"""A tiny, made-up repository state for the evaluate stage: what tune, train, sweep and edge would have left behind.

The outcome is known in advance: every one of the eight primary claims holds, at both designs, and every
specification that can be estimated agrees with it (tests/test_comparison.py checks each):
- train@ (the curves and sigmoid inputs are made up): BN climbs with a time constant of 100 steps, vanilla of 250,
  so BN reaches every climb target sooner in every seed; its sigmoid inputs barely move while vanilla's drift (more
  the higher the seed).
- train@ (the models are real): each variant is trained for a few steps at its tuned rate on the synthetic split.
  BN learns the ten prototypes in that time, vanilla is still near chance, so BN's final accuracy is the higher, seed
  by seed and image by image (its per-image predictions are the saved models' own).
- sweep@ (made up, on a grid of 3 rates × 2 init stds × 10 seeds; see SWEEP_FINAL): each member's final accuracy is a
  whole number of the 200 test images, the table's value plus a few images of per-seed noise (SWEEP_NOISE), and its
  predictions are right on exactly those images. At init std 0.1 both nets train at rates 0.1 and 1, the shared
  design's cells; vanilla diverges at 10 and never leaves chance at init std 1.0, where BN fails at rate 10 only. So:
  - shared design, init std 0.1: BN climbs faster (time constant 25 steps against 60) in both cells and every seed,
    is more accurate on average (−2.5 pp at rate 0.1, +7 pp at rate 1) and its sigmoid inputs stay put while
    vanilla's drift; at init std 1.0 no rate has both nets training, so those specifications are not estimable.
  - the largest usable rate: at init std 0.1 (the paper's, the only one edge@ refines, as in params.yaml) vanilla's
    edge lies between 1 and 10, BN's between 10 and 100, refined by edge@ (EDGE_TRAINS) to a factor that varies from
    seed to seed: BN's is higher in every seed. On the sweep's grid alone the ratio is 10 in every seed at init std
    0.1 and 100 at 1.0 (vanilla's edge there is a step below the grid): not estimable. BN trained at every refined
    rate in one seed (seed 3), where its edge is a lower bound.
  - robust to init: at init std 1.0 over the shared design's rates BN keeps about 96 %, vanilla sits at chance.
  - the map: BN higher in 4 cells, lower in 1 (init std 0.1, rate 0.1: 95 % against 97.5 %) and neither in 1 (init
    std 1.0, rate 10: both at chance, a tie), before and after the correction; vanilla did not train in 4 cells
    (diverged at 10, at chance at init std 1.0), BN in 1.
  - the horizon check: vanilla's tuned rate (0.2) is nearest its best swept rate (0.1); BN's (5, nearest 10) is not,
    its best swept rate being 1, better in every seed.

The writers of src/results/ write every file, so the files have the layout the readers expect.

`outcome`, `swept` and `shared` build one variant's train@ outcome, sweep and shared outcome in memory, for the unit
tests of the per-seed numbers, the specifications and the claims.
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

from src import paths
from src.analysis.comparison import Comparison, compare
from src.analysis.outcomes import Edges, SharedOutcome, TunedOutcome
from src.config import Params, load_params, parse_params
from src.data.splits import load_split
from src.engine.network import build_model
from src.engine.schedule import Schedule, eval_schedule
from src.engine.scoring import predict_members
from src.engine.trainer import Evaluation, Trainer, TrainingData, TrainingHistory
from src.results.members import write_final, write_history, write_predictions, write_sigmoid_inputs
from src.results.sweep import SweepResults, SweepSummary
from src.results.train import Percentiles, SeedCurves, TrainSummary, write_models
from src.results.tune import TuningSummary, TuningTrial, write_trials
from src.training.members import MemberTable, edge_brackets
from tests import synthetic

SEEDS = list(range(10))  # as many as the study's: an exact sign-flip test over fewer cannot pass a family's correction
TEST_IMAGES = 200  # 20 of each digit
TEST_LABELS = synthetic.images_and_labels(TEST_IMAGES, seed=2)[1]  # the test split write_processed writes (third)
CHANCE = 0.1  # 20 of the 200 images: what a net that predicts one digit for every image gets

# train@
STEPS = np.arange(0, 1100, 100)
UNITS = 2
# time constants of 1 − 0.9 exp(−step / τ): BN gets there sooner, and a little higher
TIME_CONSTANT = {"vanilla": 250.0, "bn": 100.0}
CEILING = {"vanilla": 0.975, "bn": 0.985}
LEARNING_RATES = {"vanilla": 0.2, "bn": 5.0}
MODEL_STEPS = 20  # enough for BN to learn the synthetic prototypes, not for vanilla

# sweep@
SWEEP_RATES = (0.1, 1.0, 10.0)
SWEEP_INIT_STDS = (0.1, 1.0)
SWEEP_STEPS, SWEEP_EVAL_EVERY = 200, 20
# final test accuracy per init std, one per swept rate, before the noise; None: the run diverges (and then predicts
# one digit for every image: CHANCE exactly)
SWEEP_FINAL = {
    "vanilla": {0.1: (0.975, 0.92, None), 1.0: (CHANCE, CHANCE, CHANCE)},
    "bn": {0.1: (0.95, 0.99, 0.965), 1.0: (0.96, 0.965, CHANCE)},
}
# (seeds, init stds, rates): images more or fewer right than the table says, in every run that does not diverge
SWEEP_NOISE = {
    variant: np.random.default_rng(seed).integers(-2, 3, (len(SEEDS), len(SWEEP_INIT_STDS), len(SWEEP_RATES)))
    for variant, seed in (("vanilla", 7), ("bn", 8))
}
# the climb of 0.1 + (final − 0.1)(1 − exp(−step / τ)), scaled to end at the final accuracy; τ varies by seed
SWEEP_TIME_CONSTANT = {"vanilla": 60.0, "bn": 25.0}
SWEEP_TIME_JITTER = (0.0, 0.1, -0.1, 0.05, -0.05, 0.15, -0.15, 0.08, -0.08, 0.02)  # per seed, × τ
SWEEP_DIVERGES_AT = 100  # the step from which a diverging sweep run is marked diverged

# edge@, at init std 0.1: per seed, how many of the refined rates above its largest usable swept rate train (the lowest)
EDGE_TRAINS = {"vanilla": (2, 3, 1, 2, 3, 2, 1, 2, 3, 2), "bn": (3, 4, 2, 5, 3, 4, 2, 3, 4, 3)}
EDGE_TRAINED_ACCURACY = 0.95


def tiny_params(repo_root: Path) -> dict:
    """The repository's params.yaml shrunk to a two-layer, eight-unit net, a 3 × 2 × 10 sweep, targets to match."""
    raw = copy.deepcopy(yaml.safe_load((repo_root / "params.yaml").read_text()))
    raw["model"].update(hidden_layers=2, hidden_units=8, init_std=0.1, population_batches=2)
    raw["train"].update(steps=int(STEPS[-1]), seeds=len(SEEDS), tracked_units=UNITS, eval_every=100, evals_per_decade=0)
    raw["sweep"].update(
        lr_min=SWEEP_RATES[0],
        lr_max=SWEEP_RATES[-1],
        lrs_per_decade=1,
        init_stds=list(SWEEP_INIT_STDS),
        seeds=len(SEEDS),
        steps=SWEEP_STEPS,
        eval_every=SWEEP_EVAL_EVERY,
        evals_per_decade=0,
        checkpoint_every=100,
    )
    raw["edge"].update(init_stds=[0.1])
    raw["evaluate"].update(
        accuracy_targets=[0.9, 0.95, 0.99],
        usable_accuracy=0.9,
        resamples=999,
        figure1_lrs=[1.0, 10.0],  # where vanilla trains and where it diverges
    )
    return raw


def accuracy_curve(variant: str, seed: int) -> np.ndarray:
    """train@'s test accuracy curve of one seed (BN: under its moving averages)."""
    noise = np.random.default_rng([seed, len(variant)]).normal(0, 0.002, STEPS.shape)
    curve = 1 - 0.9 * np.exp(-STEPS / TIME_CONSTANT[variant]) + noise
    return np.minimum(curve, CEILING[variant] + noise)


def write_results_tree(root: Path, repo_root: Path) -> dict:
    """Write params.yaml, data/processed, models/ and results/{tune,train,sweep,edge}/ under `root`; return params."""
    raw = tiny_params(repo_root)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    params = parse_params(raw)
    processed = synthetic.write_processed(root / "data" / "processed", {"train": 300, "val": 100, "test": TEST_IMAGES})
    for variant in ("vanilla", "bn"):
        final = _write_models(root, params, processed, variant)
        _write_training(root / paths.stage_dir("train", variant), params, variant, final)
        _write_tuning(root / paths.stage_dir("tune", variant), variant)
        write_sweep(root / paths.stage_dir("sweep", variant), params, variant)
        _write_edge(root / paths.stage_dir("edge", variant), params, variant)
    return raw


def comparison_of(root: Path) -> Comparison:
    """`compare` on the tree under `root` (it reads its inputs relative to the working directory)."""
    with contextlib.chdir(root):
        return compare(load_params())


def _write_models(root: Path, params: Params, processed: Path, variant: str) -> Evaluation:
    """Train each seed's model MODEL_STEPS steps at the variant's tuned rate, save it and its test predictions; its
    final test scores."""
    train = load_split(processed, "train", torch.device("cpu"), params.data.binarize)
    test = load_split(processed, "test", torch.device("cpu"), params.data.binarize)
    model = build_model(params.model, variant, SEEDS, "cpu")
    schedule = Schedule(
        steps=MODEL_STEPS,
        batch_size=params.train.batch_size,
        eval_steps=(0, MODEL_STEPS),
        momentum=0.0,
        learning_rates=(LEARNING_RATES[variant],) * len(SEEDS),
        data_seeds=tuple(SEEDS),
        population_batches=params.model.population_batches,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small only waits for a second thread
    try:
        final = Trainer(model, TrainingData(train, test), schedule).run(progress=False).final
        predicted = predict_members(model, test).numpy()
    finally:
        torch.set_num_threads(threads)
    state_dicts = [model.member_state_dict(member) for member in range(len(SEEDS))]
    write_models(root / paths.MODELS / variant, state_dicts, SEEDS)
    members = MemberTable.tuned(LEARNING_RATES[variant], params.model.init_std, SEEDS)
    write_predictions(root / paths.stage_dir("train", variant), predicted, members)
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
    write_history(directory, result, members)
    write_sigmoid_inputs(directory, result, members)
    train_summary(variant, LEARNING_RATES[variant], final.accuracy).write(directory)


def train_summary(variant: str, lr: float, final_accuracy: Sequence[float], seeds: Sequence[int] = SEEDS):
    """train@'s summary.json of a run at `lr` whose saved models score `final_accuracy` on the test split."""
    return TrainSummary(
        variant=variant,
        lr=lr,
        lr_source="tune",
        seeds=list(seeds),
        steps=int(STEPS[-1]),
        batch_size=60,
        final_test_accuracy=list(final_accuracy),
        final_test_accuracy_mean=float(np.mean(final_accuracy)),
        final_test_accuracy_std=float(np.std(final_accuracy, ddof=1)) if len(final_accuracy) > 1 else 0.0,
        final_val_accuracy=list(final_accuracy),
        champion_seed=seeds[0],
        n_diverged=0,
        device="cpu",
    )


# --- sweep@ and edge@ ----------------------------------------------------------------------------------------


def sweep_diverged(variant: str) -> np.ndarray:
    """(init stds, rates): which sweep@ runs diverge."""
    return np.array([[a is None for a in SWEEP_FINAL[variant][std]] for std in SWEEP_INIT_STDS])


def sweep_final_accuracy(variant: str) -> np.ndarray:
    """(seeds, init stds, rates): sweep@'s final test accuracy as written, noise included (a whole number of images)."""
    table = np.array([[CHANCE if a is None else a for a in SWEEP_FINAL[variant][std]] for std in SWEEP_INIT_STDS])
    right = np.round(table * TEST_IMAGES) + SWEEP_NOISE[variant] * ~sweep_diverged(variant)  # a diverged run is flat
    return right / TEST_IMAGES


def write_sweep(directory: Path, params: Params, variant: str) -> None:
    """results/sweep/<variant>/{history,sigmoid_inputs,final}.csv, predictions.npz and summary.json: params' sweep
    grid, one member per cell in the order the sweep stage trains them (MemberTable.grid)."""
    members = MemberTable.grid(params.sweep)
    steps = np.array(eval_schedule(params.sweep.steps, params.sweep.eval_every, params.sweep.evals_per_decade))
    cells = [
        (SEEDS.index(seed), _index(SWEEP_INIT_STDS, init_std), _index(SWEEP_RATES, lr))
        for lr, init_std, seed in zip(members.lr, members.init_std, members.seed, strict=True)
    ]
    final = np.array([sweep_final_accuracy(variant)[cell] for cell in cells])  # (members,)
    diverges = np.array([sweep_diverged(variant)[cell[1:]] for cell in cells])
    tau = np.array([SWEEP_TIME_CONSTANT[variant] * (1 + SWEEP_TIME_JITTER[cell[0]]) for cell in cells])
    climbed = (1 - np.exp(-steps[:, None] / tau)) / (1 - np.exp(-steps[-1] / tau))  # 0 at the start, 1 at the end
    accuracy = CHANCE + (final - CHANCE) * climbed  # (evals, members)
    diverged = diverges & (steps[:, None] >= SWEEP_DIVERGES_AT)
    accuracy[:, diverges] = CHANCE
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
    write_history(directory, result, members)
    write_sigmoid_inputs(directory, result, members)
    write_final(directory, evaluation, members)
    predicted = right_on(final, rng=np.random.default_rng(len(variant)))
    predicted[diverges] = 0  # a diverged net's outputs are NaN: the argmax is digit 0 for every image
    write_predictions(directory, predicted, members)
    SweepSummary(variant=variant, members=len(members), steps=params.sweep.steps, device="cpu").write(directory)


def _write_edge(directory: Path, params: Params, variant: str) -> None:
    """edge@'s final.csv and summary.json: of each bracket's refined rates, the lowest EDGE_TRAINS train, the rest end
    at chance."""
    shape = (len(SEEDS), len(SWEEP_INIT_STDS), len(SWEEP_RATES))
    diverged = np.broadcast_to(sweep_diverged(variant), shape)
    brackets = edge_brackets(
        sweep_final_accuracy(variant), diverged, params.sweep, params.edge, params.evaluate.usable_accuracy
    )
    members = MemberTable.refining(brackets, params.edge.rates_between)
    trains = [k % params.edge.rates_between < EDGE_TRAINS[variant][seed] for k, seed in enumerate(members.seed)]
    evaluation = Evaluation(
        step=params.sweep.steps,
        accuracy=[EDGE_TRAINED_ACCURACY if ok else CHANCE for ok in trains],
        loss=[0.2 if ok else 2.3 for ok in trains],
        diverged=[False] * len(trains),
    )
    write_final(directory, evaluation, members)
    SweepSummary(variant=variant, members=len(members), steps=params.sweep.steps, device="cpu").write(directory)


def _index(values: Sequence[float], value: float) -> int:
    return int(np.argmin(np.abs(np.log(values) - np.log(value))))


def _train_result(steps, accuracy, diverged, percentiles, final: Evaluation) -> TrainingHistory:
    """What the engine would have returned: accuracy and diverged (evals, members), percentiles (evals, 3, K, units)."""
    loss = np.where(diverged, np.nan, 2.3 * (1 - accuracy))
    return TrainingHistory(
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
    lrs = [0.05, 0.2, 5.0, 20.0, 50.0]
    diverges_from = 5.0 if variant == "vanilla" else 50.0
    trials = []
    for number, lr in enumerate(lrs):
        diverged = lr >= diverges_from
        state = "PRUNED" if diverged or number == 0 else "COMPLETE"
        trials.append(TuningTrial(number, lr, 0.098 if diverged else 0.9 + 0.01 * number, state, diverged))
    trials.append(TuningTrial(len(lrs), 1.0, None, "FAIL", False))
    write_trials(directory, trials)
    TuningSummary(
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


# --- in memory: one variant's train@ outcome, sweep and shared outcome ---------------------------------------------


def right_on(accuracy: Sequence[float] | np.ndarray, labels: np.ndarray = TEST_LABELS, rng=None) -> np.ndarray:
    """(..., images) uint8 predictions, one row per accuracy, right on exactly round(accuracy × images) images (drawn
    at random) and wrong (the next digit) on the others."""
    accuracy = np.asarray(accuracy, dtype=float)
    rng = np.random.default_rng(0) if rng is None else rng
    images = len(labels)
    predicted = np.empty((*accuracy.shape, images), dtype=np.uint8)
    for index in np.ndindex(*accuracy.shape):
        right = np.zeros(images, dtype=bool)
        right[rng.permutation(images)[: round(accuracy[index] * images)]] = True
        predicted[index] = np.where(right, labels, (labels + 1) % 10)
    return predicted


def outcome(
    steps: np.ndarray,
    accuracy: np.ndarray,
    final_accuracy: Sequence[float],
    drift: Sequence[float],
    seeds: Sequence[int] | None = None,
    lr: float = 1.0,
    variant: str = "bn",
) -> TunedOutcome:
    """A train@ outcome at rate `lr`: per seed, the test accuracy curve accuracy[s] over `steps`, the saved model's test
    predictions right on final_accuracy[s] of the test images (rounded to whole images), and one tracked sigmoid whose
    input drifts by drift[s] (see `drifting`). What the claims do not read (the tuning study, the scores of the saved
    models, the losses) is left out."""
    accuracy = np.asarray(accuracy, dtype=float)
    seeds = list(range(len(accuracy))) if seeds is None else list(seeds)
    curves = SeedCurves(
        steps=np.asarray(steps),
        seeds=seeds,
        accuracy=accuracy,
        loss=np.full(accuracy.shape, math.nan),
        diverged=np.zeros(len(seeds), dtype=bool),
    )
    return TunedOutcome(
        variant=variant,
        tuning=None,
        trials=[],
        training=train_summary(variant, lr, final_accuracy, seeds),
        curves=curves,
        sigmoid_inputs={(seed, 0): drifting(steps, d) for seed, d in zip(seeds, drift, strict=True)},
        predicted=right_on(final_accuracy, rng=np.random.default_rng(len(variant))),
        labels=TEST_LABELS,
        test={},
        train={},
    )


def drifting(steps: np.ndarray, relative_drift: float) -> Percentiles:
    """A sigmoid input with a 15–85th spread of 2 that moves as a whole by 2 × `relative_drift` at the last step, so
    its relative drift is `relative_drift` (≥ 0, or NaN); an infinite one has no spread at all."""
    steps = np.asarray(steps)
    if math.isinf(relative_drift):
        flat = np.zeros(steps.shape)
        return Percentiles(steps, flat, flat, flat)
    shift = np.zeros(steps.shape)
    shift[-1] = 2 * relative_drift
    return Percentiles(steps, -1 + shift, shift, 1 + shift)


def swept(
    final_accuracy: np.ndarray,
    learning_rates: Sequence[float] = SWEEP_RATES,
    init_stds: Sequence[float] = SWEEP_INIT_STDS,
    diverged=None,
    accuracy: np.ndarray | None = None,
    steps: np.ndarray | None = None,
) -> SweepResults:
    """A sweep of the given (seeds, init stds, rates) final accuracies; its curves `accuracy` (seeds, init stds, rates,
    evals) over `steps`, NaN if not given; its sigmoid inputs never move."""
    final_accuracy = np.asarray(final_accuracy, dtype=float)
    shape = final_accuracy.shape
    steps = np.array([0, 100]) if steps is None else np.asarray(steps)
    still = np.stack([drifting(steps, 0.0).stacked()] * UNITS)  # (units, 3, evals)
    return SweepResults(
        learning_rates=np.asarray(learning_rates, dtype=float),
        init_stds=np.asarray(init_stds, dtype=float),
        seeds=list(range(shape[0])),
        final_accuracy=final_accuracy,
        diverged=np.zeros(shape, dtype=bool) if diverged is None else np.asarray(diverged, dtype=bool),
        steps=steps,
        accuracy=np.full((*shape, steps.size), np.nan) if accuracy is None else np.asarray(accuracy, dtype=float),
        percentiles=np.broadcast_to(still, (*shape, *still.shape)).copy(),
    )


def shared(variant: str, sweep: SweepResults, edges: Edges | None = None) -> SharedOutcome:
    """One variant's shared outcome: `sweep`, per-image predictions right on each member's final accuracy, and
    `edges` (if not given, each seed's largest trained swept rate at every init std, refined or not)."""
    if edges is None:
        trained = (sweep.final_accuracy >= 0.9) & ~sweep.diverged  # (S, I, L)
        largest = np.where(trained, sweep.learning_rates, sweep.learning_rates[0] / 10).max(axis=-1)
        edges = Edges(sweep.init_stds.tolist(), largest, np.full(largest.shape, np.inf), largest)
    predicted = right_on(sweep.final_accuracy, rng=np.random.default_rng(len(variant)))
    return SharedOutcome(variant, sweep, predicted, TEST_LABELS, edges)
