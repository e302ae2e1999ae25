"""The per-seed numbers of both designs: a saved model scored, a train@ outcome's final accuracy and drift per seed,
and per seed of a sweep the largest rate that trains and the accuracy under the worst init."""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from src import outcomes, stats
from src.config import VARIANTS, load_params, parse_params
from src.data import load_split
from src.errors import StudyError
from src.models import build_model
from src.outcomes import (
    check_same_seeds,
    example_unit,
    mean_curves,
    score,
    steps_to,
    tuned_outcome,
    usable_learning_rates,
    worst_init_accuracy,
)
from src.results import Curves, Percentiles, TuningSummary, read_trained, read_trials, stage_dir
from tests import synthetic, synthetic_results
from tests.synthetic_results import drifting, outcome, swept

STEPS = np.arange(0, 1001, 100)  # a tenth of training: step 100


# --- scoring a saved model ----------------------------------------------------------------------------------


def test_a_model_is_scored_by_its_argmax_and_mean_cross_entropy(repo_root):
    model = build_model(load_params(repo_root / "params.yaml").model, "bn", [3], "cpu").eval()
    split = synthetic.split(120, seed=4)
    scores = score(model, split)
    with torch.no_grad():
        logits = model(split.images)[0]
    assert scores.accuracy == pytest.approx((logits.argmax(1) == split.labels).float().mean().item())
    assert scores.loss == pytest.approx(torch.nn.functional.cross_entropy(logits, split.labels).item(), rel=1e-5)
    assert scores.confusion.sum() == 120
    assert scores.confusion.sum(axis=1).tolist() == torch.bincount(split.labels, minlength=10).tolist()
    assert np.trace(scores.confusion) == round(scores.accuracy * 120)


def test_a_split_scored_in_batches_gives_the_numbers_of_one_pass(repo_root, monkeypatch):
    model = build_model(load_params(repo_root / "params.yaml").model, "vanilla", [1], "cpu")
    split = synthetic.split(50, seed=2)
    whole = score(model, split)
    monkeypatch.setattr(outcomes, "_SCORING_BATCH", 7)  # 50 images: seven full batches and one of 1
    batched = score(model, split)
    np.testing.assert_array_equal(batched.confusion, whole.confusion)
    assert batched.accuracy == whole.accuracy
    assert batched.loss == pytest.approx(whole.loss, rel=1e-6)  # float32 logits of other batch shapes


def test_an_empty_split_cannot_be_scored(repo_root):
    model = build_model(load_params(repo_root / "params.yaml").model, "bn", [0], "cpu")
    with pytest.raises(StudyError, match="cannot score a model on an empty split"):
        score(model, synthetic.split(0))


# --- train@: a variant's saved models scored, beside its study and its curves -------------------------------


@pytest.fixture(scope="module")
def tuned(tree) -> dict:
    """tuned_outcome of both variants of the synthetic tree."""
    root, raw = tree
    params = parse_params(raw)
    processed = root / "data" / "processed"
    splits = {name: load_split(processed, name, torch.device("cpu"), binarize=True) for name in ("test", "train")}
    with contextlib.chdir(root):
        return {
            variant: tuned_outcome(
                read_trained(variant),
                TuningSummary.read(stage_dir("tune", variant)),
                read_trials(stage_dir("tune", variant)),
                params,
                splits,
            )
            for variant in VARIANTS
        }


def test_every_saved_seed_is_scored_on_both_splits(tuned):
    for result in tuned.values():
        assert sorted(result.test) == sorted(result.train) == result.seeds == synthetic_results.SEEDS
        assert all(scores.confusion.sum() == 200 for scores in result.test.values())
        assert all(scores.confusion.sum() == 300 for scores in result.train.values())


def test_the_saved_models_are_scored_as_training_left_them(tuned):
    # train@'s summary holds the trainer's own final test scores (BN under Algorithm 2): scoring the saved models
    # again must give the same numbers
    for result in tuned.values():
        assert result.final_accuracy.tolist() == pytest.approx(result.training.final_test_accuracy, abs=1e-6)


def test_a_tuned_outcome_keeps_its_study_and_its_run_beside_the_scores(tuned, tree):
    with contextlib.chdir(tree[0]):
        for variant, result in tuned.items():
            assert result.variant == result.training.variant == variant
            assert result.tuning == TuningSummary.read(stage_dir("tune", variant))
            assert result.trials == read_trials(stage_dir("tune", variant))
            assert result.curves.seeds == read_trained(variant).curves.seeds


def test_final_accuracy_follows_the_seed_order_of_the_curves():
    result = outcome(STEPS, np.zeros((3, STEPS.size)), [0.7, 0.8, 0.9], [0.0] * 3, seeds=[5, 1, 3])
    scrambled = {seed: result.test[seed] for seed in (3, 5, 1)}
    assert replace(result, test=scrambled).final_accuracy.tolist() == [0.7, 0.8, 0.9]


def test_each_sigmoids_drift_runs_from_a_tenth_of_training_to_the_end():
    curve = Percentiles(STEPS, np.linspace(-1, -3, STEPS.size), np.linspace(0, -1, STEPS.size), np.ones(STEPS.size))
    result = outcome(STEPS, np.zeros((1, STEPS.size)), [0.9], [0.0])
    result = replace(result, sigmoid_inputs={(0, 0): curve})
    drift = result.drifts[(0, 0)]
    assert outcomes.DRIFT_REFERENCE_FRACTION == 0.1 and drift.reference_step == 100
    assert drift == stats.percentile_drift(STEPS, curve.p15, curve.p50, curve.p85, reference_fraction=0.1)


def test_a_seeds_drift_is_the_mean_over_its_tracked_sigmoids():
    result = outcome(STEPS, np.zeros((2, STEPS.size)), [0.9, 0.9], [0.0, 0.0])
    inputs = {(0, 0): drifting(STEPS, 0.5), (0, 1): drifting(STEPS, 1.5), (1, 0): drifting(STEPS, 0.2),
              (1, 1): drifting(STEPS, 0.2)}  # fmt: skip
    result = replace(result, sigmoid_inputs=inputs)
    assert result.drifts[(0, 1)].relative_drift == pytest.approx(1.5)
    assert result.drift == pytest.approx([1.0, 0.2])


def test_a_sigmoid_without_spread_has_no_finite_drift_and_neither_has_its_seed():
    result = outcome(STEPS, np.zeros((2, STEPS.size)), [0.9, 0.9], [0.3, math.inf])
    assert result.drift[0] == pytest.approx(0.3)
    assert result.drift[1] == math.inf


def _trained_on(seeds: list[int]):
    return outcome(STEPS, np.zeros((len(seeds), STEPS.size)), [0.9] * len(seeds), [0.0] * len(seeds), seeds=seeds)


def test_variants_trained_on_the_same_seeds_are_paired_seed_by_seed():
    assert check_same_seeds({"vanilla": _trained_on([0, 1, 2]), "bn": _trained_on([0, 1, 2])}) == [0, 1, 2]


@pytest.mark.parametrize(
    "vanilla_seeds", [[9, 1, 2], [0, 1], [0, 1, 2, 3], [2, 1, 0]], ids=["other", "fewer", "more", "reordered"]
)
def test_variants_trained_on_other_seeds_are_refused(vanilla_seeds):
    with pytest.raises(StudyError) as error:
        check_same_seeds({"vanilla": _trained_on(vanilla_seeds), "bn": _trained_on([0, 1, 2])})
    assert str(error.value) == (
        f"train@ ran vanilla on seeds {vanilla_seeds} and BN on [0, 1, 2]: the comparison pairs them seed by seed; "
        "re-run `dvc repro train`"
    )


def test_an_evaluation_a_seed_lacks_never_counts_as_reaching_the_target():
    steps = np.array([0, 100, 200, 300])
    accuracy = np.array([[0.1, np.nan, 0.96, 0.97], [0.1, 0.5, 0.6, 0.96]])
    curves = Curves(steps, [0, 1], accuracy, accuracy, np.zeros(2, dtype=bool))
    assert steps_to(curves, 0.95) == stats.StepsToTarget(median=250.0, n_reached=2)
    assert steps_to(curves, 0.99).n_reached == 0


def test_mean_curves_average_the_seeds_on_the_union_of_the_variants_steps():
    early = outcome([0, 100, 200], [[0.2, 0.6, 0.8], [0.4, np.nan, np.inf]], [0.9] * 2, [0.0] * 2)
    late = outcome([0, 200, 300], [[0.5, 0.7, 0.9], [0.5, 0.9, 0.9]], [0.9] * 2, [0.0] * 2)
    steps, columns = mean_curves({"vanilla": early, "bn": late}, "accuracy")
    assert steps.tolist() == [0, 100, 200, 300]
    # a value that is not finite is left out of its step's mean; a step a variant lacks is NaN
    np.testing.assert_allclose(columns["vanilla"], [0.3, 0.6, 0.8, np.nan])
    np.testing.assert_allclose(columns["bn"], [0.5, np.nan, 0.8, 0.9])
    assert list(columns) == ["vanilla", "bn"]


def test_a_step_where_every_seed_diverged_has_no_mean_loss_and_no_warning():
    diverged = outcome([0, 100], [[0.5, 0.1], [0.5, 0.1]], [0.1] * 2, [0.0] * 2)
    loss = np.array([[2.3, np.nan], [2.3, np.nan]])
    diverged = replace(diverged, curves=replace(diverged.curves, loss=loss, diverged=np.ones(2, dtype=bool)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, columns = mean_curves({"bn": diverged}, "loss")
    np.testing.assert_array_equal(columns["bn"], [2.3, np.nan])


# --- the sigmoid drawn in Figure 1 (b, c) ---------------------------------------------------------------------


def test_the_example_unit_is_the_first_one_both_variants_tracked():
    moving = Percentiles(STEPS, STEPS / 1000 - 1, STEPS / 1000, STEPS / 1000 + 1)  # p50 0.1 at step 100, 1 at the end
    still = drifting(STEPS, 0.0)
    tracked = {
        "vanilla": {(0, 1): drifting(STEPS, 9.0), (1, 0): moving, (1, 3): drifting(STEPS, 9.0)},
        "bn": {(1, 0): still, (1, 3): still},  # (0, 1) is vanilla's alone
    }
    tuned = {
        variant: replace(outcome(STEPS, np.zeros((2, STEPS.size)), [0.9] * 2, [0.0] * 2), sigmoid_inputs=inputs)
        for variant, inputs in tracked.items()
    }
    example = example_unit(tuned)
    assert (example.seed, example.unit) == (1, 0)
    assert example.drift == {"vanilla": tuned["vanilla"].drifts[(1, 0)], "bn": tuned["bn"].drifts[(1, 0)]}
    assert example.start == {"vanilla": pytest.approx(0.1), "bn": 0.0}  # p50 at the reference step
    assert example.end == {"vanilla": pytest.approx(1.0), "bn": 0.0}  # p50 at the last step


# --- sweep@: the largest usable rate and the worst init, per seed ---------------------------------------------

RATES = [0.1, 0.3, 1.0, 3.0]
INITS = [0.01, 0.1]


def test_the_usable_rate_is_per_seed_the_largest_that_trains_at_the_named_init_std():
    at_init = [
        [0.97, 0.97, 0.95, 0.10],  # trains up to 1.0
        [0.97, 0.50, 0.97, 0.90],  # 3.0 still trains (≥ 0.9), past a rate that did not
        [0.97, 0.10, 0.10, 0.10],  # only at 0.1
    ]
    others = np.full((3, 4), 0.10)  # at init std 0.01 nothing trains
    sweep = swept(np.stack([others, at_init], axis=1), RATES, INITS)
    assert usable_learning_rates(sweep, 1, usable_accuracy=0.9).tolist() == [1.0, 3.0, 0.1]


def test_a_diverged_cell_does_not_train_whatever_its_accuracy():
    final = np.full((1, 2, 4), 0.97)
    diverged = np.zeros((1, 2, 4), dtype=bool)
    diverged[0, 1, 2:] = True
    sweep = swept(final, RATES, INITS, diverged)
    assert usable_learning_rates(sweep, 1, usable_accuracy=0.9).tolist() == [0.3]
    assert usable_learning_rates(sweep, 0, usable_accuracy=0.9).tolist() == [3.0]


def test_a_seed_that_trains_at_no_rate_gets_one_grid_step_below_the_smallest():
    sweep = swept(np.full((2, 2, 4), 0.5), RATES, INITS)
    assert usable_learning_rates(sweep, 1, usable_accuracy=0.9) == pytest.approx([0.1 / 3, 0.1 / 3])
    one_rate = swept(np.full((1, 2, 1), 0.5), [0.3], INITS)
    assert usable_learning_rates(one_rate, 1, usable_accuracy=0.9) == pytest.approx([0.03])  # a decade below


def test_worst_init_accuracy_averages_the_worst_init_std_over_the_rates_per_seed():
    final = [
        [[0.90, 0.80, 0.40], [0.95, 0.95, 0.95]],  # init 0.01 is the worst at every rate: (0.9 + 0.8 + 0.4) / 3
        [[0.96, 0.96, 0.96], [0.93, 0.90, 0.60]],  # init 0.1 is: (0.93 + 0.9 + 0.6) / 3
    ]
    sweep = swept(final, [0.1, 1.0, 10.0], INITS)
    assert worst_init_accuracy(sweep) == pytest.approx([0.7, 0.81])


def test_worst_init_accuracy_takes_the_worst_init_std_at_each_rate():
    final = [[[0.90, 0.50], [0.60, 0.95]]]  # init 0.1 is the worse at rate 0.1, init 0.01 at rate 1.0
    sweep = swept(final, [0.1, 1.0], INITS)
    assert worst_init_accuracy(sweep) == pytest.approx([(0.60 + 0.50) / 2])
