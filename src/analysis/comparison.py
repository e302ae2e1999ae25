"""The whole comparison, read and decided once from what tune@, train@, sweep@ and edge@ wrote.

`compare` reads every input and computes every claim, specification, map cell and check before the evaluate stage
writes a single file; the metrics, figures and report are built from the `Comparison` it returns and compute
nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from src import paths
from src.analysis import outcomes as derive
from src.analysis.claims import Claim, HorizonCheck, MapCell, decide_claims, horizon_check, robustness_map
from src.analysis.outcomes import Evidence, ExampleUnit, SharedOutcome, TunedOutcome
from src.config import VARIANTS, ModelConfig, Params
from src.data.splits import Split, load_split
from src.results.edge import read_edge_final
from src.results.members import read_predictions
from src.results.sweep import read_sweep
from src.results.train import read_trained
from src.results.tune import TuningSummary, read_trials
from src.training.members import MemberTable, edge_brackets


@dataclass(frozen=True)
class Comparison:
    params: Params
    evidence: Evidence  # per variant: train@ at its tuned rate, the sweep and its refined edges
    claims: list[Claim]  # the primary claims, in the report's order, each with its specification curve
    cells: list[MapCell]  # the robustness map, init std by init std, rate by rate
    horizons: dict[str, HorizonCheck]  # per variant: its tuned rate against the sweep's best
    example: ExampleUnit  # the sigmoid Figure 1 (b, c) draws

    @property
    def tuned(self) -> dict[str, TunedOutcome]:
        return dict(self.evidence.tuned)

    @property
    def shared(self) -> dict[str, SharedOutcome]:
        return dict(self.evidence.shared)


def compare(params: Params) -> Comparison:
    """Read every stage's outputs (paths relative to the working directory) and decide the claims."""
    # the models are tiny: the CPU scores them in seconds and gives the same numbers on every machine
    device = torch.device("cpu")
    splits = {name: load_split(paths.PROCESSED_DATA, name, device, params.data.binarize) for name in ("test", "train")}
    tuned = {variant: _tuned(variant, params.model, splits) for variant in VARIANTS}
    derive.check_same_seeds(tuned)
    shared = {variant: _shared(variant, params, splits["test"]) for variant in VARIANTS}
    evidence = Evidence(tuned, shared, params.evaluate, params.sweep, params.model.init_std)
    horizons = {variant: horizon_check(evidence, variant) for variant in VARIANTS}
    example = derive.example_unit(tuned, params.evaluate.drift_reference)
    return Comparison(params, evidence, decide_claims(evidence), robustness_map(evidence), horizons, example)


def _tuned(variant: str, model: ModelConfig, splits: dict[str, Split]) -> TunedOutcome:
    run, tuning = read_trained(variant), paths.stage_dir("tune", variant)
    members = MemberTable.tuned(run.summary.lr, model.init_std, run.summary.seeds)
    predicted = read_predictions(paths.stage_dir("train", variant), members)
    return derive.tuned_outcome(run, TuningSummary.read(tuning), read_trials(tuning), predicted, model, splits)


def _shared(variant: str, params: Params, test: Split) -> SharedOutcome:
    sweep = read_sweep(variant, params.sweep, params.train.tracked_units)
    grid = MemberTable.grid(params.sweep)
    shape = (len(sweep.seeds), len(sweep.init_stds), len(sweep.learning_rates), -1)
    predicted = read_predictions(paths.stage_dir("sweep", variant), grid).reshape(shape)
    usable_accuracy = params.evaluate.usable_accuracy
    brackets = edge_brackets(sweep.final_accuracy, sweep.diverged, params.sweep, params.edge, usable_accuracy)
    refined = MemberTable.refining(brackets, params.edge.rates_between)
    refined_final = read_edge_final(variant, refined)
    edges = derive.edges(
        sweep, refined, refined_final, params.sweep.lrs_per_decade, params.edge.init_stds, usable_accuracy
    )
    return SharedOutcome(variant, sweep, predicted, test.labels.cpu().numpy(), edges)
