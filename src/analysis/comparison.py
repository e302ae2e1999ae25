"""The whole comparison, read and decided once from what tune@, train@, sweep@ and edge@ wrote.

`compare` reads every input and computes every claim, specification, map cell and check before the evaluate stage
writes a single file; the metrics, figures and report are built from the `Comparison` it returns and compute
nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from src.analysis import outcomes as derive
from src.analysis.claims import Claim, HorizonCheck, MapCell, decide_claims, horizon_check, robustness_map
from src.analysis.outcomes import ExampleUnit, SharedOutcome, TunedOutcome
from src.analysis.specifications import Outcomes
from src.config import VARIANTS, Params
from src.data.splits import PROCESSED_DIR, Split, load_split
from src.results.files import (
    TuningSummary,
    read_edge_final,
    read_predictions,
    read_sweep,
    read_trained,
    read_trials,
    stage_dir,
)
from src.training.members import MemberTable


@dataclass(frozen=True)
class Comparison:
    params: Params
    outcomes: Outcomes  # per variant: train@ at its tuned rate, the sweep and its refined edges
    claims: list[Claim]  # the primary claims, in the report's order, each with its specification curve
    cells: list[MapCell]  # the robustness map, init std by init std, rate by rate
    horizons: dict[str, HorizonCheck]  # per variant: its tuned rate against the sweep's best
    example: ExampleUnit  # the sigmoid Figure 1 (b, c) draws

    @property
    def tuned(self) -> dict[str, TunedOutcome]:
        return dict(self.outcomes.tuned)

    @property
    def shared(self) -> dict[str, SharedOutcome]:
        return dict(self.outcomes.shared)


def compare(params: Params) -> Comparison:
    """Read every stage's outputs (paths relative to the working directory) and decide the claims."""
    # the models are tiny: the CPU scores them in seconds and gives the same numbers on every machine
    device = torch.device("cpu")
    splits = {name: load_split(PROCESSED_DIR, name, device, params.data.binarize) for name in ("test", "train")}
    tuned = {variant: _tuned(variant, params, splits) for variant in VARIANTS}
    derive.check_same_seeds(tuned)
    shared = {variant: _shared(variant, params, splits["test"]) for variant in VARIANTS}
    outcomes = Outcomes(tuned, shared, params)
    horizons = {variant: horizon_check(outcomes, variant) for variant in VARIANTS}
    example = derive.example_unit(tuned, params.evaluate.drift_reference)
    return Comparison(params, outcomes, decide_claims(outcomes), robustness_map(outcomes), horizons, example)


def _tuned(variant: str, params: Params, splits: dict[str, Split]) -> TunedOutcome:
    run, tuning = read_trained(variant), stage_dir("tune", variant)
    members = MemberTable.tuned(run.summary.lr, params.model.init_std, run.summary.seeds)
    predicted = read_predictions(stage_dir("train", variant), members)
    return derive.tuned_outcome(run, TuningSummary.read(tuning), read_trials(tuning), predicted, params, splits)


def _shared(variant: str, params: Params, test: Split) -> SharedOutcome:
    sweep = read_sweep(variant, params)
    grid = MemberTable.grid(params.sweep)
    shape = (len(sweep.seeds), len(sweep.init_stds), len(sweep.learning_rates), -1)
    predicted = read_predictions(stage_dir("sweep", variant), grid).reshape(shape)
    refined = MemberTable.refining(derive.edge_brackets(sweep.final_accuracy, sweep.diverged, params),
                                   params.edge.rates_between)  # fmt: skip
    edges = derive.edges(sweep, refined, read_edge_final(variant, refined), params)
    return SharedOutcome(variant, sweep, predicted, test.labels.cpu().numpy(), edges)
