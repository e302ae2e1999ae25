"""Do the intervals cover, and does the accuracy test hold its level, at our n? Seeded Monte-Carlo checks.

1. The coverage of each interval of a mean (src/analysis/stats.py's IntervalMethod) at n = 10 paired seeds, on
   shapes our per-seed differences take or could take: normal, skewed (exponential, lognormal), heavy-tailed (t with
   3 degrees of freedom), the difference of two accuracies on 10,000 test images, a log-ratio on a half-decade grid
   of rates (discrete, with ties), and a run that trained or stayed at chance (bimodal, bounded).
2. The type-I rate of each accuracy test (params' `accuracy_test`) on null data shaped like ours: 10 seeds × 10,000
   test images of 0/1 correctness per variant, where a seed's own luck dominates and each seed gets its own images
   right and wrong beyond what the image's difficulty says (a seed × image interaction), and no variant is better.
   Where the seeds dominate, the two-level bootstrap over seeds and images rejects too often (a percentile
   bootstrap over 10 seeds is too narrow); the exact sign-flip test over seeds holds its level at any mix.

    python -m src.analysis.simulation [--reps 2000] [--data-sets 400]

prints both tables (about 7 minutes at the defaults). params.yaml's `evaluate.interval` and `accuracy_test` cite them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import get_args

import numpy as np

from src.analysis import stats
from src.cli import OneLineParser, report_user_errors

SEEDS, IMAGES = 10, 10_000
HALF_DECADE = math.log(10) / 2


def _trained_or_at_chance(rng: np.random.Generator, size: int) -> np.ndarray:
    trained = rng.random((2, size)) < 0.8
    accuracy = np.where(trained, rng.binomial(200, 0.95, (2, size)), rng.binomial(200, 0.1, (2, size))) / 200
    return accuracy[0] - accuracy[1]


# name -> (draw `size` values with `rng`, their true mean)
SHAPES: dict[str, tuple[Callable[[np.random.Generator, int], np.ndarray], float]] = {
    "normal": (lambda rng, size: rng.normal(0, 1, size), 0.0),
    "exponential": (lambda rng, size: rng.exponential(1, size), 1.0),
    "lognormal": (lambda rng, size: rng.lognormal(0, 1, size), math.exp(0.5)),
    "t3": (lambda rng, size: rng.standard_t(3, size), 0.0),
    "accuracy difference": (
        lambda rng, size: (rng.binomial(IMAGES, 0.975, size) - rng.binomial(IMAGES, 0.975, size)) / IMAGES,
        0.0,
    ),
    "grid log-ratio": (
        lambda rng, size: HALF_DECADE * rng.choice([-2, -1, 0, 1, 2], size, p=[0.1, 0.2, 0.4, 0.2, 0.1]),
        0.0,
    ),
    "trained or chance": (_trained_or_at_chance, 0.0),
}


def coverage(shape: str, inference: stats.PairedInference, reps: int, n: int = SEEDS, seed: int = 0) -> float:
    """The share of `reps` samples of `n` values from `shape` whose `inference.interval` interval covers the true
    mean (a sample of one repeated value is covered only if it is the mean). Monte-Carlo standard error:
    √(c(1 − c) / reps), 0.49 pp at 95 % and 2,000 reps."""
    draw, true_mean = SHAPES[shape]
    rng, covered = np.random.default_rng(seed), 0
    for rep in range(reps):
        values = draw(rng, n)
        if np.ptp(values) == 0:
            covered += values[0] == true_mean
            continue
        low, high, _ = stats.mean_interval(values, _reseeded(inference, rep))
        covered += low <= true_mean <= high
    return covered / reps


def null_correctness(
    rng: np.random.Generator, luck: float = 0.3, seeds: int = SEEDS, images: int = IMAGES
) -> np.ndarray:
    """(seeds, images) correct_bn − correct_vanilla with no effect: both variants from one model. On the logit scale
    an image's difficulty (shared by every run), a run's own luck (seed × variant, sd `luck`) and a seed × image
    interaction (sd 1: which borderline images a run gets right); mean accuracy 97.2 %. At luck 0.3 the seeds'
    standard error of the mean difference is 5 times what resampling the images adds; at 0.1, 1.5 times."""
    difficulty = rng.normal(7.0, 3.0, images)
    run_luck = rng.normal(0, luck, (2, seeds, 1))
    interaction = rng.normal(0, 1.0, (2, seeds, images))
    correct = rng.random((2, seeds, images)) < 1 / (1 + np.exp(-(difficulty + run_luck + interaction)))
    return correct[0].astype(float) - correct[1].astype(float)


def accuracy_type_one(
    test: str, inference: stats.PairedInference, data_sets: int, seed: int = 0, luck: float = 0.3
) -> float:
    """The share of `data_sets` null data sets (null_correctness) where the accuracy test (params' `accuracy_test`:
    "seeds" tests the per-seed accuracies with `inference.test`, "seeds_and_images" is the two-level bootstrap)
    finds a difference at 1 − confidence, either way. Monte-Carlo standard error √(r(1 − r) / data_sets)."""
    rng, alpha, rejected = np.random.default_rng(seed), round(1 - inference.confidence, 12), 0
    for data_set in range(data_sets):
        differences = null_correctness(rng, luck)
        if test == "seeds":
            per_seed = differences.mean(axis=1)
            estimate = stats.paired_difference_test(per_seed, np.zeros_like(per_seed), inference, (-1.0, 1.0))
        else:
            estimate = stats.two_level_bootstrap(differences, inference.confidence, inference.resamples, data_set)
        rejected += estimate.p_value is not None and estimate.p_value <= alpha
    return rejected / data_sets


def _reseeded(inference: stats.PairedInference, seed: int) -> stats.PairedInference:
    """Each simulated sample its own bootstrap seed: one seed for all would make the samples' intervals err
    together."""
    return stats.PairedInference(inference.confidence, inference.test, inference.resamples, seed, inference.interval)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2000, help="samples per shape and interval (default 2000)")
    parser.add_argument("--data-sets", type=int, default=400, help="null data sets per accuracy test (default 400)")
    args = parser.parse_args(argv)
    if args.reps < 1 or args.data_sets < 1:
        parser.error(f"--reps and --data-sets must be >= 1, got {args.reps} and {args.data_sets}")
    methods = get_args(stats.IntervalMethod)
    print(
        f"Coverage of a nominal 95 % interval of the mean at n = {SEEDS}, {args.reps} samples per cell, "
        f"999 resamples (MC standard error about {100 * math.sqrt(0.95 * 0.05 / args.reps):.1f} pp at 95 %):"
    )
    print(f"{'shape':<22}" + "".join(f"{method:>13}" for method in methods))
    for shape in SHAPES:
        cells = [
            coverage(shape, stats.PairedInference(resamples=999, interval=method), args.reps) for method in methods
        ]
        print(f"{shape:<22}" + "".join(f"{cell:>12.1%} " for cell in cells))
    print(
        f"\nType-I rate at a nominal 5 % on null data of {SEEDS} seeds × {IMAGES:,} images, {args.data_sets} data "
        f"sets (MC standard error about {100 * math.sqrt(0.05 * 0.95 / args.data_sets):.1f} pp at 5 %):"
    )
    print(f"{'seed luck (logit sd)':<22}" + "".join(f"{luck:>13g}" for luck in (0.1, 0.3)))
    for test in ("seeds", "seeds_and_images"):
        inference = stats.PairedInference(resamples=399)  # p to 1 / 200: enough to tell 5 % from 10 %
        rates = [accuracy_type_one(test, inference, args.data_sets, luck=luck) for luck in (0.1, 0.3)]
        print(f"{test:<22}" + "".join(f"{rate:>12.1%} " for rate in rates))


if __name__ == "__main__":
    report_user_errors(main)
