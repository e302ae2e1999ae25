"""The per-seed numbers of both designs: a train@ outcome's predictions, final accuracy, confusion and drift per seed;
a shared outcome's per-member drift; which runs trained; each seed's learning-rate bracket for edge@ and the edge it
finds; the saved models scored; and the pairing of seeds between the variants."""

from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from src import paths
from src.analysis.curves import StepsToTarget, percentile_drift
from src.analysis.outcomes import check_same_seeds, edges, example_unit, mean_curves, median_steps_to, tuned_outcome
from src.config import VARIANTS, parse_params
from src.data.splits import load_split
from src.errors import StudyError
from src.results.members import read_predictions
from src.results.train import Percentiles, SeedCurves, read_trained
from src.results.tune import TuningSummary, read_trials
from src.training.members import MemberTable, edge_brackets, usable
from tests import synthetic_results
from tests.synthetic_results import TEST_IMAGES, TEST_LABELS, drifting, outcome, swept

STEPS = np.arange(0, 1001, 100)  # a tenth of training: step 100


# --- train@: one variant at its tuned rate -------------------------------------------------------------------


def test_final_accuracy_is_each_seeds_share_of_test_images_predicted_right():
    result = outcome(STEPS, np.zeros((3, STEPS.size)), [0.9, 0.5, 0.975], [0.0] * 3, seeds=[5, 1, 3])
    assert result.predicted.shape == result.correct.shape == (3, TEST_IMAGES)
    np.testing.assert_array_equal(result.correct, result.predicted == TEST_LABELS)
    assert result.final_accuracy.tolist() == [0.9, 0.5, 0.975]  # in the seed order of the curves


def test_the_moving_average_accuracy_is_each_curves_last_point():
    curves = np.array([[0.1, 0.5, 0.93], [0.1, 0.6, 0.95]])
    result = outcome(np.array([0, 50, 100]), curves, [0.9, 0.9], [0.0, 0.0])
    assert result.moving_average_accuracy.tolist() == [0.93, 0.95]


def test_the_confusion_counts_every_test_image_of_every_seed_by_true_and_predicted_digit():
    result = outcome(STEPS, np.zeros((2, STEPS.size)), [0.9, 0.6], [0.0, 0.0])
    confusion = result.confusion()
    assert confusion.shape == (10, 10) and confusion.sum() == 2 * TEST_IMAGES
    assert confusion.sum(axis=1).tolist() == [2 * 20] * 10  # 20 images of each digit, seen by both seeds
    assert np.trace(confusion) == (0.9 + 0.6) * TEST_IMAGES
    # a wrong prediction is the next digit (tests/synthetic_results.py): nothing else is off the diagonal
    off = confusion - np.diag(np.diag(confusion))
    assert off.sum() == np.trace(np.roll(off, -1, axis=1))


def test_each_sigmoids_drift_runs_from_the_reference_fraction_of_training_to_the_end():
    curve = Percentiles(STEPS, np.linspace(-1, -3, STEPS.size), np.linspace(0, -1, STEPS.size), np.ones(STEPS.size))
    result = replace(outcome(STEPS, np.zeros((1, STEPS.size)), [0.9], [0.0]), sigmoid_inputs={(0, 0): curve})
    for fraction, step in ((0.1, 100), (0.5, 500), (0.001, 100)):
        drift = result.unit_drifts(fraction)[(0, 0)]
        assert drift.reference_step == step
        assert drift == percentile_drift(STEPS, curve.p15, curve.p50, curve.p85, reference_fraction=fraction)


def test_a_seeds_drift_is_the_mean_over_its_tracked_sigmoids():
    result = outcome(STEPS, np.zeros((2, STEPS.size)), [0.9, 0.9], [0.0, 0.0])
    inputs = {
        (0, 0): drifting(STEPS, 0.5),
        (0, 1): drifting(STEPS, 1.5),
        (1, 0): drifting(STEPS, 0.2),
        (1, 1): drifting(STEPS, 0.2),
    }
    result = replace(result, sigmoid_inputs=inputs)
    assert result.unit_drifts(0.1)[(0, 1)].relative_drift == pytest.approx(1.5)
    assert result.drift(0.1) == pytest.approx([1.0, 0.2])


def test_a_sigmoid_without_spread_has_no_finite_drift_and_neither_has_its_seed():
    result = outcome(STEPS, np.zeros((2, STEPS.size)), [0.9, 0.9], [0.3, math.inf])
    assert result.drift(0.1)[0] == pytest.approx(0.3)
    assert result.drift(0.1)[1] == math.inf


# --- train@: the saved models scored, beside the study, the run and the predictions ---------------------------


@pytest.fixture(scope="module")
def tuned(tree) -> dict:
    """tuned_outcome of both variants of the synthetic tree."""
    root, raw = tree
    params = parse_params(raw)
    processed = root / "data" / "processed"
    splits = {name: load_split(processed, name, torch.device("cpu"), binarize=True) for name in ("test", "train")}
    outcomes = {}
    with contextlib.chdir(root):
        for variant in VARIANTS:
            members = MemberTable.tuned(synthetic_results.LEARNING_RATES[variant], 0.1, synthetic_results.SEEDS)
            predicted = read_predictions(paths.stage_dir("train", variant), members)
            tuning, trials = (
                TuningSummary.read(paths.stage_dir("tune", variant)),
                read_trials(paths.stage_dir("tune", variant)),
            )
            outcomes[variant] = tuned_outcome(read_trained(variant), tuning, trials, predicted, params.model, splits)
    return outcomes


def test_every_saved_seed_is_scored_on_both_splits(tuned):
    for result in tuned.values():
        assert sorted(result.test) == sorted(result.train) == result.seeds == synthetic_results.SEEDS
        assert all(0 <= scores.accuracy <= 1 and math.isfinite(scores.loss) for scores in result.train.values())


def test_the_saved_models_score_what_their_predictions_and_training_say(tuned):
    # the predictions train@ wrote and the saved models scored again agree image by image, and with the trainer's own
    # final test scores (BN under Algorithm 2)
    for result in tuned.values():
        scored = [result.test[seed].accuracy for seed in result.seeds]
        assert scored == pytest.approx(result.final_accuracy.tolist(), abs=1e-6)
        assert scored == pytest.approx(result.training.final_test_accuracy, abs=1e-6)
    assert tuned["bn"].final_accuracy.mean() > tuned["vanilla"].final_accuracy.mean() + 0.5


def test_a_tuned_outcome_keeps_its_study_its_run_and_the_test_labels(tuned, tree):
    with contextlib.chdir(tree[0]):
        for variant, result in tuned.items():
            assert result.variant == result.training.variant == variant
            assert result.tuning == TuningSummary.read(paths.stage_dir("tune", variant))
            assert result.trials == read_trials(paths.stage_dir("tune", variant))
            assert result.curves.seeds == read_trained(variant).curves.seeds
            np.testing.assert_array_equal(result.labels, TEST_LABELS)


# --- the shared design: per member ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared(tree) -> dict:
    return synthetic_results.comparison_of(tree[0]).shared


def test_a_shared_outcome_is_right_where_each_members_prediction_is_its_label(shared):
    bn = shared["bn"]
    assert bn.correct.shape == (*bn.sweep.final_accuracy.shape, TEST_IMAGES)
    np.testing.assert_allclose(bn.correct.mean(axis=-1), bn.sweep.final_accuracy)  # as the sweep wrote them


def test_a_members_drift_is_the_mean_over_its_tracked_sigmoids(shared):
    sweep = shared["vanilla"].sweep
    drift = shared["vanilla"].drift(0.5)
    assert drift.shape == sweep.final_accuracy.shape
    for seed, init, rate in [(0, 0, 0), (3, 1, 2), (9, 0, 1)]:
        units = [
            percentile_drift(sweep.steps, *sweep.percentiles[seed, init, rate, unit], 0.5).relative_drift
            for unit in range(sweep.percentiles.shape[3])
        ]
        assert drift[seed, init, rate] == pytest.approx(np.mean(units))
    assert not shared["bn"].drift(0.5)[0].any()  # BN's seed 0 never moves (tests/synthetic_results.py)


# --- which runs trained, each seed's bracket for edge@, and the edge it finds ------------------------------------


def test_a_run_trains_when_it_ends_at_the_usable_accuracy_or_above_without_diverging():
    final = np.array([0.95, 0.9, 0.899, 0.97])
    diverged = np.array([False, False, False, True])
    assert usable(final, diverged, 0.9).tolist() == [True, True, False, False]


@pytest.fixture(scope="module")
def params(repo_root):
    """The tiny grid: rates 0.1, 1 and 10 (a step of 10), init stds 0.1 and 1.0; edge@ refines at 0.1."""
    return parse_params(synthetic_results.tiny_params(repo_root))


def _at_init_0_1(per_seed: list[list[float]]) -> np.ndarray:
    """(seeds, inits, rates) final accuracies: `per_seed` at init std 0.1, chance at 1.0; ten seeds, the rest as the
    last given."""
    rows = np.array(per_seed + [per_seed[-1]] * (10 - len(per_seed)))
    return np.stack([rows, np.full(rows.shape, 0.1)], axis=1)


def test_a_seeds_bracket_runs_from_its_largest_usable_swept_rate_to_the_next_grid_rate(params):
    final = _at_init_0_1([[0.97, 0.95, 0.10], [0.97, 0.10, 0.10], [0.97, 0.50, 0.95], [0.10, 0.10, 0.10], [0.97] * 3])
    brackets = edge_brackets(
        final, np.zeros(final.shape, dtype=bool), params.sweep, params.edge, params.evaluate.usable_accuracy
    )
    assert [seed for seed, *_ in brackets] == list(range(10)) and {std for _, std, *_ in brackets} == {0.1}
    lows_and_highs = [(low, high) for *_, low, high in brackets]
    assert lows_and_highs[:5] == [
        pytest.approx((1.0, 10.0)),  # trains up to 1
        pytest.approx((0.1, 1.0)),
        pytest.approx((10.0, 100.0)),  # trains at 10 past a rate that did not: the largest counts
        pytest.approx((0.01, 0.1)),  # usable nowhere: the step below the grid
        pytest.approx((10.0, 100.0)),  # usable at the top: the step above it
    ]


def test_a_diverged_run_does_not_train_whatever_its_accuracy(params):
    final = _at_init_0_1([[0.97, 0.97, 0.97]])
    diverged = np.zeros(final.shape, dtype=bool)
    diverged[:, 0, 2] = True
    assert [
        (low, high)
        for *_, low, high in edge_brackets(final, diverged, params.sweep, params.edge, params.evaluate.usable_accuracy)
    ] == [(1.0, pytest.approx(10.0))] * 10


def _edges_of(params, final: np.ndarray, trains_refined: dict[int, int]):
    """edges() for the sweep `final` (no divergence), where the lowest trains_refined[seed] refined rates train."""
    sweep = swept(final)
    brackets = edge_brackets(final, sweep.diverged, params.sweep, params.edge, params.evaluate.usable_accuracy)
    refined = MemberTable.refining(brackets, params.edge.rates_between)
    per_bracket = params.edge.rates_between
    trained = np.array([k % per_bracket < trains_refined.get(seed, 0) for k, seed in enumerate(refined.seed)])
    refined_final = (np.where(trained, 0.95, 0.1), np.zeros(len(refined), dtype=bool))
    return edges(
        sweep,
        refined,
        refined_final,
        params.sweep.lrs_per_decade,
        params.edge.init_stds,
        params.evaluate.usable_accuracy,
    ), brackets


def test_the_edge_is_the_largest_rate_that_trained_swept_or_refined_with_the_factor_to_the_next_rate_tried(params):
    final = _at_init_0_1([[0.97, 0.95, 0.10], [0.97, 0.97, 0.97], [0.10, 0.10, 0.10]])
    found, _ = _edges_of(params, final, {0: 2, 1: 5, 2: 0})
    step = 10 ** (1 / 6)  # five refined rates cut a step of 10 in six
    assert found.refined_inits == [0.1] and found.rates.shape == found.resolution.shape == (10, 1)
    assert found.rates[0, 0] == pytest.approx(1.0 * step**2) and found.resolution[0, 0] == pytest.approx(step)
    # trained at every rate tried, up to 10 · step^5: nothing above was tried, the edge is a lower bound
    assert found.rates[1, 0] == pytest.approx(10 * step**5) and found.resolution[1, 0] == math.inf
    # trained nowhere: the step below the grid, conservatively, and the first refined rate above it
    assert found.rates[2, 0] == pytest.approx(0.01) and found.resolution[2, 0] == pytest.approx(step)


def test_the_grid_edge_is_read_off_the_swept_rates_alone_at_every_swept_init(params):
    final = _at_init_0_1([[0.97, 0.95, 0.10], [0.97, 0.97, 0.97], [0.10, 0.10, 0.10]])
    final[0, 1] = [0.97, 0.10, 0.10]  # seed 0 trains at init std 1.0 at rate 0.1 only
    found, _ = _edges_of(params, final, {0: 2, 1: 5})
    assert found.coarse.shape == (10, 2)
    assert found.coarse[:3].tolist() == [[1.0, 0.1], [10.0, pytest.approx(0.01)], [pytest.approx(0.01)] * 2]


# --- both variants: paired seed by seed ------------------------------------------------------------------------


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


def test_the_median_steps_to_a_target_never_counts_an_evaluation_a_seed_lacks():
    steps = np.array([0, 100, 200, 300])
    accuracy = np.array([[0.1, np.nan, 0.96, 0.97], [0.1, 0.5, 0.6, 0.96]])
    curves = SeedCurves(steps, [0, 1], accuracy, accuracy, np.zeros(2, dtype=bool))
    assert median_steps_to(curves, 0.95) == StepsToTarget(median=250.0, n_reached=2)  # at evaluations: 200 and 300
    assert median_steps_to(curves, 0.99).n_reached == 0


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


def test_the_example_unit_is_the_first_one_both_variants_tracked_measured_from_the_reference():
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
    example = example_unit(tuned, 0.1)
    assert (example.seed, example.unit) == (1, 0)
    assert example.drift == {v: tuned[v].unit_drifts(0.1)[(1, 0)] for v in tracked}
    assert example.start == {"vanilla": pytest.approx(0.1), "bn": 0.0}  # p50 at the reference step
    assert example.end == {"vanilla": pytest.approx(1.0), "bn": 0.0}  # p50 at the last step
    assert example_unit(tuned, 0.5).start["vanilla"] == pytest.approx(0.5)
