"""The whole comparison, read and decided once from what tune@, train@ and sweep@ wrote.

`compare` reads every input and computes every claim, map cell and check before the evaluate stage writes a single
file; the metrics, figures and report are built from the `Comparison` it returns and compute nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from src.claims import Claim, HorizonCheck, MapCell, all_claims, horizon_check, robustness_map
from src.config import VARIANTS, Params
from src.data import PROCESSED_DIR, load_split
from src.outcomes import ExampleUnit, TunedOutcome, check_same_seeds, example_unit, tuned_outcome
from src.results import SweepResults, TuningSummary, read_sweep, read_trained, read_trials, stage_dir


@dataclass(frozen=True)
class Comparison:
    params: Params
    tuned: dict[str, TunedOutcome]  # train@ and tune@, per variant
    sweeps: dict[str, SweepResults]
    claims: list[Claim]
    cells: list[MapCell]  # the robustness map, init std by init std, rate by rate
    horizons: dict[str, HorizonCheck]  # per variant: its tuned rate against the sweep's best
    example: ExampleUnit  # the sigmoid Figure 1 (b, c) draws


def compare(params: Params) -> Comparison:
    """Read every stage's outputs (paths relative to the working directory) and decide the claims."""
    # the models are tiny: the CPU scores them in seconds and gives the same numbers on every machine
    device = torch.device("cpu")
    splits = {name: load_split(PROCESSED_DIR, name, device, params.data.binarize) for name in ("test", "train")}
    tuned = {}
    for variant in VARIANTS:
        tuning = stage_dir("tune", variant)
        tuned[variant] = tuned_outcome(
            read_trained(variant), TuningSummary.read(tuning), read_trials(tuning), params, splits
        )
    check_same_seeds(tuned)
    sweeps = {variant: read_sweep(variant, params) for variant in VARIANTS}
    settings = params.evaluate
    paper_init = params.sweep.init_stds.index(params.model.init_std)
    claims = all_claims(
        tuned,
        sweeps,
        convergence_target=settings.convergence_target,
        usable_accuracy=settings.usable_accuracy,
        init_std=params.model.init_std,
        confidence=settings.confidence,
    )
    horizons = {
        variant: horizon_check(sweeps[variant], tuned[variant].training.lr, paper_init, settings.confidence)
        for variant in VARIANTS
    }
    cells = robustness_map(sweeps["vanilla"], sweeps["bn"], settings.confidence)
    return Comparison(params, tuned, sweeps, claims, cells, horizons, example_unit(tuned))
