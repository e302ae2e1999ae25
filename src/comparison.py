"""The whole comparison, assembled from what tune@, train@ and sweep@ wrote: claims, metrics, figures, report.

`compare` reads and decides everything that can fail before the evaluate stage writes a single file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from src import figures, sweep_figures
from src.claims import Claim, TrainedSeeds, all_claims, check_same_seeds
from src.config import VARIANTS, Params
from src.data import PROCESSED_DIR, load_split
from src.report import ExampleUnit, map_summary, per_digit_accuracy, render_report
from src.robustness import (
    HorizonCheck,
    MapCell,
    SweepResults,
    check_paired,
    horizon_check,
    load_sweep,
    robustness_map,
)
from src.scores import VariantResults, build_metrics, load_variant, mean_curves, trained_seeds, unit_drifts

REPORT = Path("reports/report.md")
FIGURES = Path("reports/figures")


@dataclass(frozen=True)
class Comparison:
    params: Params
    results: Mapping[str, VariantResults]  # train@ and tune@, per variant
    sweeps: Mapping[str, SweepResults]
    claims: list[Claim]
    cells: list[MapCell]
    metrics: dict

    def figures(self) -> dict[str, Figure]:
        """file stem -> figure, every figure of the report."""
        results, sweeps, model = self.results, self.sweeps, self.params.model
        example = example_unit(results)
        trials = {
            variant: [figures.TrialPoint(t.lr, t.value, t.state, t.diverged) for t in result.trials]
            for variant, result in results.items()
        }
        return {
            "test_accuracy": figures.accuracy_figure(
                {v: r.curves.steps for v, r in results.items()}, {v: r.curves.accuracy for v, r in results.items()}
            ),
            "sigmoid_inputs": figures.sigmoid_inputs_figure(
                {v: r.sigmoid_inputs[(example.seed, example.unit)].steps for v, r in results.items()},
                {v: _stacked(r.sigmoid_inputs[(example.seed, example.unit)]) for v, r in results.items()},
                subtitle=f"seed {example.seed}, unit {example.unit}, each variant at its tuned rate",
            ),
            "lr_search": figures.lr_search_figure(trials, {v: r.tuning.get("best_lr") for v, r in results.items()}),
            "confusion": figures.confusion_figure(
                {v: sum(scores.confusion for scores in r.test.values()) for v, r in results.items()}
            ),
            "robustness_map": sweep_figures.robustness_map_figure(
                robustness_grid(self.cells, sweeps["bn"], self.confidence)
            ),
            "shared_rates": sweep_figures.shared_rate_figure(
                [shared_rate_panel(sweeps, lr, model.init_std) for lr in self.params.evaluate.figure1_lrs],
                model.init_std,
            ),
        }

    @property
    def confidence(self) -> float:
        return self.params.evaluate.confidence

    def report(self) -> str:
        params, results, sweep = self.params, self.results, self.sweeps["bn"]
        paths = {name: f"{FIGURES.relative_to(REPORT.parent)}/{name}.png" for name in FIGURE_NAMES}
        seeds = results["bn"].curves.seeds
        return render_report(
            {
                "claims": self.claims,
                "confidence": self.confidence,
                "metrics": self.metrics,
                "targets": params.evaluate.accuracy_targets,
                "population_batches": params.model.population_batches,
                "seeds_text": f"{len(seeds)} seeds ({', '.join(map(str, seeds))})",
                "runs": {variant: _run_facts(result) for variant, result in results.items()},
                "sweep": {
                    "rates": [f"{lr:.3g}" for lr in sweep.learning_rates],
                    "init_stds": [f"{std:g}" for std in sweep.init_stds],
                    "seeds": sweep.seeds,
                    "steps": params.sweep.steps,
                    "paper_init_std": f"{params.model.init_std:g}",
                },
                "map": map_summary(self.cells, self.confidence),
                "horizon": self._horizon_checks(),
                "example": example_unit(results),
                "figures": paths,
                "config": _config_lines(params),
                "per_digit": {
                    v: per_digit_accuracy([s.confusion for s in r.test.values()]) for v, r in results.items()
                },
            }
        )

    def _horizon_checks(self) -> dict[str, HorizonCheck]:
        return horizon_checks(self.params, self.results, self.sweeps)

    def plot_curves(self) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
        """'accuracy' and 'loss': the mean over seeds per variant, for DVC's plots."""
        return {quantity: mean_curves(self.results, quantity) for quantity in ("accuracy", "loss")}


FIGURE_NAMES = ("test_accuracy", "sigmoid_inputs", "robustness_map", "shared_rates", "lr_search", "confusion")


def compare(params: Params) -> Comparison:
    """Read every stage's outputs (paths relative to the working directory) and decide the claims."""
    # the models are tiny: the CPU scores them in seconds and gives the same numbers on every machine
    device = torch.device("cpu")
    test = load_split(PROCESSED_DIR, "test", device, params.data.binarize)
    train = load_split(PROCESSED_DIR, "train", device, params.data.binarize)
    results = {variant: load_variant(Path("."), variant, params.model, test, train) for variant in VARIANTS}
    sweeps = {variant: load_sweep(Path("results/sweep") / variant) for variant in VARIANTS}
    check_paired(sweeps["vanilla"], sweeps["bn"])
    trained: dict[str, TrainedSeeds] = {variant: trained_seeds(result) for variant, result in results.items()}
    check_same_seeds(trained)
    settings = params.evaluate
    claims = all_claims(
        trained,
        sweeps,
        convergence_target=settings.convergence_target,
        usable_accuracy=settings.usable_accuracy,
        init_std=params.model.init_std,
        confidence=settings.confidence,
    )
    cells = robustness_map(sweeps["vanilla"], sweeps["bn"], settings.confidence)
    horizons = horizon_checks(params, results, sweeps)
    sweep_metrics = {"horizon": _horizon_metrics(horizons), "robustness_map": _map_metrics(cells)}
    metrics = build_metrics(results, claims, sweep_metrics, settings.accuracy_targets, settings.confidence)
    return Comparison(params, results, sweeps, claims, cells, metrics)


def example_unit(results: Mapping[str, VariantResults]) -> ExampleUnit:
    """The first tracked unit of the first seed that both variants tracked."""
    seed, unit = min(set.intersection(*(set(result.sigmoid_inputs) for result in results.values())))
    drift = {variant: unit_drifts(result)[(seed, unit)] for variant, result in results.items()}
    start, end = {}, {}
    for variant, result in results.items():
        curve = result.sigmoid_inputs[(seed, unit)]
        start[variant] = float(curve.p50[np.flatnonzero(curve.steps == drift[variant].reference_step)[0]])
        end[variant] = float(curve.p50[-1])
    return ExampleUnit(seed=seed, unit=unit, drift=drift, start=start, end=end)


def robustness_grid(cells: list[MapCell], sweep: SweepResults, confidence: float) -> sweep_figures.RobustnessGrid:
    shape = (len(sweep.init_stds), len(sweep.learning_rates))

    def grid(value) -> np.ndarray:
        return np.array([np.nan if value(cell) is None else value(cell) for cell in cells], dtype=float).reshape(shape)

    return sweep_figures.RobustnessGrid(
        learning_rates=sweep.learning_rates,
        init_stds=sweep.init_stds,
        vanilla=grid(lambda cell: cell.vanilla),
        bn=grid(lambda cell: cell.bn),
        difference=grid(lambda cell: cell.difference.effect),
        ci_low=grid(lambda cell: cell.difference.ci_low),
        ci_high=grid(lambda cell: cell.difference.ci_high),
        confidence=confidence,
    )


def shared_rate_panel(sweeps: Mapping[str, SweepResults], learning_rate: float, init_std: float):
    """Both variants at one shared rate and init: accuracy per seed, and seed 0's first tracked sigmoid."""
    cell = {v: (sweep.init_index(init_std), sweep.lr_index(learning_rate)) for v, sweep in sweeps.items()}
    return sweep_figures.SharedRatePanel(
        lr=learning_rate,
        steps={v: sweep.steps for v, sweep in sweeps.items()},
        accuracy={v: sweep.accuracy[:, i, j] for v, sweep in sweeps.items() for i, j in [cell[v]]},
        percentiles={v: sweep.percentiles[0, i, j, 0] for v, sweep in sweeps.items() for i, j in [cell[v]]},
        percentile_steps={v: sweep.steps for v, sweep in sweeps.items()},
    )


def horizon_checks(
    params: Params, results: Mapping[str, VariantResults], sweeps: Mapping[str, SweepResults]
) -> dict[str, HorizonCheck]:
    """Per variant: its tuned rate against the sweep's best at the same init (the paper's init std)."""
    return {
        variant: horizon_check(sweeps[variant], results[variant].training["lr"], params.model.init_std,
                               params.evaluate.confidence)
        for variant in VARIANTS
    }  # fmt: skip


def _horizon_metrics(horizons: Mapping[str, HorizonCheck]) -> dict:
    return {
        variant: {
            "tuned_lr": check.tuned_lr,
            "nearest_swept_lr": check.nearest_swept_lr,
            "best_swept_lr": check.best_swept_lr,
            "shortfall": check.shortfall.effect,
            "ci_low": check.shortfall.ci_low,
            "ci_high": check.shortfall.ci_high,
            "within_seed_noise": check.within_seed_noise,
        }
        for variant, check in horizons.items()
    }


def _map_metrics(cells: list[MapCell]) -> dict:
    """init std -> learning rate -> both means and the paired BN − vanilla with its interval."""
    grid: dict = {}
    for cell in cells:
        grid.setdefault(f"init_std_{cell.init_std:g}", {})[f"lr_{cell.learning_rate:.3g}"] = {
            "vanilla": cell.vanilla,
            "bn": cell.bn,
            "difference": cell.difference.effect,
            "ci_low": cell.difference.ci_low,
            "ci_high": cell.difference.ci_high,
        }
    return grid


def _stacked(curve) -> np.ndarray:
    return np.stack([curve.p15, curve.p50, curve.p85])


def _run_facts(result: VariantResults) -> dict:
    training, tuning = result.training, result.tuning
    return {
        "lr": training["lr"],
        "steps": training["steps"],
        "batch_size": training["batch_size"],
        "device": training["device"],
        "tune_steps": tuning["steps"],
        "study": f"{tuning['study_name']} ({tuning['storage']})",
        "trials": f"{tuning['trials_budget']} / {tuning['n_complete']} / {tuning['n_pruned']} / {tuning['n_failed']}",
    }


def _config_lines(params: Params) -> dict[str, str]:
    model = params.model
    return {
        "data": f"MNIST, {'binary images (pixel ≥ 128)' if params.data.binarize else 'grey levels scaled to [0, 1]'}",
        "model": f"{model.hidden_layers} hidden layers × {model.hidden_units} sigmoid units, "
        f"weights ~ N(0, σ²), σ = {model.init_std:g} at tuned rates; BN ε = {model.bn_eps:g}, "
        f"moving-average momentum {model.bn_momentum:g}",
        "statistics": f"{params.evaluate.confidence:.0%} t-intervals over seeds, paired by seed between the variants",
    }
