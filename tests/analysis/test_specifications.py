"""Each claim's specification curve: every design by every reasonable choice, exactly one primary per design (the one
params.yaml fixes), each specification's statistic paired by seed as its claim states it, "not estimable" where the
shared design has no rate at which both nets train, and seeds without a finite drift left out and counted.

On the synthetic tree (tests/synthetic_results.py): both nets train at init std 0.1 and rates 0.1 and 1; at init
std 1.0 vanilla never does."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from src.analysis import stats
from src.analysis.claims import CURVES
from src.analysis.curves import climb_target, steps_to
from src.analysis.outcomes import Evidence
from src.analysis.specifications import ACCURACY_CHOICES, Specification
from tests import synthetic_results
from tests.synthetic_results import SEEDS

INITS = [0.1, 1.0]  # the tiny sweep's
BOTH_TRAIN = np.array([0, 1])  # the rates, at init std 0.1, where both nets train: 0.1 and 1
NO_RATE = "no swept rate where both nets train"


@pytest.fixture(scope="module")
def outcomes(tree) -> Evidence:
    return synthetic_results.comparison_of(tree[0]).evidence


def _specs(topic: str, outcomes: Evidence) -> list[Specification]:
    return CURVES[topic](outcomes)


def _one(curve: list[Specification], design: str, init_std: float | None, choice: str) -> Specification:
    (spec,) = [s for s in curve if (s.design, s.init_std, s.choice) == (design, init_std, choice)]
    return spec


def _designs_by(choices: list[str]) -> list[tuple[str, float | None, str]]:
    return [
        (design, init, choice)
        for choice in choices
        for design, init in [("tuned", None), *(("shared", i) for i in INITS)]
    ]


# --- which specifications, and which is primary --------------------------------------------------------------


EXPECTED = {
    "faster_convergence": _designs_by([f"{climb} % of the climb" for climb in (50, 75, 90, 95, 99)]),
    "higher_accuracy": _designs_by(list(ACCURACY_CHOICES.values())),
    "stable_sigmoid_inputs": _designs_by([f"from {start} % of training" for start in (0.1, 1, 10, 50)]),
    # refined at params.edge's init stds (the paper's), on the grid alone at every swept one
    "higher_usable_lr": [
        ("shared", 0.1, "refined edge"),
        *(("shared", init, "the sweep's grid alone") for init in INITS),
    ],
    "robust_to_init": [
        ("shared", None, f"{init}, {rates}")
        for rates in ("rates where both train at the paper's init", "every swept rate")
        for init in ("the worst init std", "init std 1")
    ],
}


@pytest.mark.parametrize("topic", CURVES)
def test_each_topics_curve_is_every_design_by_every_choice(outcomes, topic):
    curve = _specs(topic, outcomes)
    assert [(spec.design, spec.init_std, spec.choice) for spec in curve] == EXPECTED[topic]
    assert {spec.topic for spec in curve} == {topic}


@pytest.mark.parametrize("topic", CURVES)
def test_exactly_one_specification_per_design_is_primary(outcomes, topic):
    curve = _specs(topic, outcomes)
    designs = ["shared"] if topic in ("higher_usable_lr", "robust_to_init") else ["tuned", "shared"]
    assert sorted(spec.design for spec in curve if spec.primary) == sorted(designs)


PRIMARY_CHOICES = {
    "faster_convergence": "95 % of the climb",
    "higher_accuracy": ACCURACY_CHOICES["seeds"],
    "stable_sigmoid_inputs": "from 1 % of training",
    "higher_usable_lr": "refined edge",
    "robust_to_init": "the worst init std, rates where both train at the paper's init",
}


@pytest.mark.parametrize("topic", CURVES)
def test_the_primary_specifications_are_params_choices_and_the_shared_one_is_at_the_papers_init(outcomes, topic):
    for spec in (spec for spec in _specs(topic, outcomes) if spec.primary):
        assert spec.choice == PRIMARY_CHOICES[topic]
        assert spec.init_std == (0.1 if spec.design == "shared" and topic != "robust_to_init" else None)


def test_the_primary_marking_follows_params(outcomes):
    # edge@ refined the edges at init std 1.0 instead (the numbers do not matter here)
    refined_at_1 = {v: replace(o, edges=replace(o.edges, refined_inits=[1.0])) for v, o in outcomes.shared.items()}
    settings = outcomes.settings.model_copy(
        update={"convergence_climb": 0.5, "accuracy_test": "seeds", "drift_reference": 0.5}
    )
    changed = replace(outcomes, shared=refined_at_1, settings=settings, paper_init_std=1.0)
    primaries = {
        topic: [(s.design, s.init_std, s.choice) for s in _specs(topic, changed) if s.primary] for topic in CURVES
    }
    assert primaries == {
        "faster_convergence": [("tuned", None, "50 % of the climb"), ("shared", 1.0, "50 % of the climb")],
        "higher_accuracy": [("tuned", None, ACCURACY_CHOICES["seeds"]), ("shared", 1.0, ACCURACY_CHOICES["seeds"])],
        "stable_sigmoid_inputs": [("tuned", None, "from 50 % of training"), ("shared", 1.0, "from 50 % of training")],
        "higher_usable_lr": [("shared", 1.0, "refined edge")],
        "robust_to_init": [("shared", None, "the worst init std, rates where both train at the paper's init")],
    }
    # the paper's init is now 1.0, where no rate has both nets training: the init claim cannot be decided there
    (robust,) = [s for s in _specs("robust_to_init", changed) if s.primary]
    assert not robust.estimate.estimable and robust.note == "no swept rate where both nets train at the paper's init"
    assert [s.choice for s in _specs("robust_to_init", changed)][1] == (
        "init std 0.1, rates where both train at the paper's init"
    )


# --- where both nets train ---------------------------------------------------------------------------------


def test_both_nets_train_at_a_rate_where_each_variant_trains_in_at_least_the_share_of_seeds(outcomes):
    assert outcomes.both_train(0).tolist() == [True, True, False]  # vanilla diverges at 10
    assert outcomes.both_train(1).tolist() == [False, False, False]  # vanilla never leaves chance at init std 1.0
    vanilla = outcomes.shared["vanilla"]
    final = vanilla.sweep.final_accuracy.copy()
    final[3, 0, 1] = 0.5  # one vanilla seed of ten fails at rate 1
    failing = _with_sweep(outcomes, "vanilla", final_accuracy=final)
    assert failing.both_train(0).tolist() == [True, False, False]
    share = replace(failing, settings=failing.settings.model_copy(update={"both_train_share": 0.9}))
    assert share.both_train(0).tolist() == [True, True, False]
    diverged = vanilla.sweep.diverged.copy()
    diverged[3, 0, 1] = True  # a run that diverged does not train, whatever its accuracy
    assert _with_sweep(outcomes, "vanilla", diverged=diverged).both_train(0).tolist() == [True, False, False]


@pytest.mark.parametrize("topic", ["faster_convergence", "higher_accuracy", "stable_sigmoid_inputs"])
def test_where_no_rate_has_both_nets_training_the_shared_specifications_are_not_estimable(outcomes, topic):
    for spec in _specs(topic, outcomes):
        if spec.design == "shared" and spec.init_std == 1.0:
            assert not spec.estimate.estimable and spec.estimate.n == 0 and math.isnan(spec.estimate.effect)
            assert spec.estimate.p_value is None and spec.note == NO_RATE
        elif spec.design == "shared":
            assert spec.estimate.estimable and spec.note.startswith("rates 0.1, 1")


def test_the_shared_specifications_are_decided_on_the_rates_where_both_train(outcomes):
    final = outcomes.shared["vanilla"].sweep.final_accuracy.copy()
    final[3, 0, 1] = 0.5  # rate 1 no longer has every vanilla seed training
    fewer = _with_sweep(outcomes, "vanilla", final_accuracy=final)
    for topic in ("faster_convergence", "higher_accuracy", "stable_sigmoid_inputs"):
        for spec in _specs(topic, fewer):
            if spec.design == "shared" and spec.init_std == 0.1:
                assert spec.note == "rates 0.1"
    accuracy = _one(_specs("higher_accuracy", fewer), "shared", 0.1, ACCURACY_CHOICES["seeds"])
    bn, vanilla = (fewer.shared[v].sweep.final_accuracy[:, 0, 0] for v in ("bn", "vanilla"))
    assert accuracy.estimate == stats.paired_difference_test(bn, vanilla, fewer.inference, bounds=(-1.0, 1.0))


# --- each statistic, as its claim states it -------------------------------------------------------------------


@pytest.mark.parametrize("climb", [0.5, 0.95])
def test_tuned_convergence_is_the_steps_to_a_climb_of_both_variants_curves_bn_over_vanilla(outcomes, climb):
    tuned = outcomes.tuned
    target = climb_target(np.concatenate([tuned["bn"].curves.accuracy, tuned["vanilla"].curves.accuracy]), climb)
    steps = {v: np.maximum(steps_to(o.curves.steps, o.curves.accuracy, target), 1.0) for v, o in tuned.items()}
    spec = _one(_specs("faster_convergence", outcomes), "tuned", None, f"{climb * 100:g} % of the climb")
    assert spec.estimate == stats.paired_ratio_test(steps["bn"], steps["vanilla"], outcomes.inference)
    assert spec.note == f"target {target:.2%}" and spec.estimate.effect < 1


def test_a_seed_at_the_target_from_the_start_counts_as_one_step(outcomes):
    bn = outcomes.tuned["bn"]
    accuracy = bn.curves.accuracy.copy()
    accuracy[0] = 0.99  # seed 0 is above every target from step 0
    at_start = replace(
        outcomes, tuned={**outcomes.tuned, "bn": replace(bn, curves=replace(bn.curves, accuracy=accuracy))}
    )
    spec = _one(_specs("faster_convergence", at_start), "tuned", None, "95 % of the climb")
    vanilla = at_start.tuned["vanilla"].curves
    target = climb_target(np.concatenate([accuracy, vanilla.accuracy]), 0.95)
    vanilla_steps = steps_to(vanilla.steps, vanilla.accuracy, target)
    assert spec.estimate.effect == pytest.approx(
        math.exp(np.mean(np.log(np.maximum(steps_to(bn.curves.steps, accuracy, target), 1.0) / vanilla_steps)))
    )
    assert np.isfinite(spec.estimate.effect) and spec.estimate.effect > 0


def test_shared_convergence_is_per_seed_the_geometric_mean_over_the_rates_of_the_steps_to_each_cells_target(outcomes):
    sweeps = {v: o.sweep for v, o in outcomes.shared.items()}
    logs = {v: [] for v in sweeps}
    for rate in BOTH_TRAIN:
        target = climb_target(
            np.concatenate([sweeps["bn"].accuracy[:, 0, rate], sweeps["vanilla"].accuracy[:, 0, rate]]), 0.95
        )
        for v, sweep in sweeps.items():
            logs[v].append(np.log(np.maximum(steps_to(sweep.steps, sweep.accuracy[:, 0, rate], target), 1.0)))
    bn, vanilla = (np.exp(np.mean(logs[v], axis=0)) for v in ("bn", "vanilla"))
    spec = _one(_specs("faster_convergence", outcomes), "shared", 0.1, "95 % of the climb")
    assert spec.estimate == stats.paired_ratio_test(bn, vanilla, outcomes.inference)


def test_final_accuracy_is_tested_over_seeds_and_test_images_over_seeds_and_on_the_moving_averages(outcomes):
    bn, vanilla, settings = outcomes.tuned["bn"], outcomes.tuned["vanilla"], outcomes.settings
    curve = _specs("higher_accuracy", outcomes)
    both = _one(curve, "tuned", None, ACCURACY_CHOICES["seeds_and_images"]).estimate
    assert both == stats.two_level_bootstrap(
        bn.correct.astype(float) - vanilla.correct, settings.confidence, settings.resamples, settings.bootstrap_seed
    )
    assert both.test == "two_level_bootstrap" and both.n == len(SEEDS)
    seeds = _one(curve, "tuned", None, ACCURACY_CHOICES["seeds"]).estimate
    assert seeds == stats.paired_difference_test(bn.final_accuracy, vanilla.final_accuracy, outcomes.inference)
    moving = _one(curve, "tuned", None, ACCURACY_CHOICES["moving_averages"]).estimate
    assert moving == stats.paired_difference_test(
        bn.curves.accuracy[:, -1], vanilla.curves.accuracy[:, -1], outcomes.inference
    )
    assert moving != seeds  # BN's moving averages and Algorithm 2 score differently


def test_shared_accuracy_over_seeds_and_images_averages_each_images_difference_over_the_rates(outcomes):
    bn, vanilla, settings = outcomes.shared["bn"], outcomes.shared["vanilla"], outcomes.settings
    differences = (bn.correct[:, 0, BOTH_TRAIN].astype(float) - vanilla.correct[:, 0, BOTH_TRAIN]).mean(axis=1)
    spec = _one(_specs("higher_accuracy", outcomes), "shared", 0.1, ACCURACY_CHOICES["seeds_and_images"])
    assert spec.estimate == stats.two_level_bootstrap(
        differences, settings.confidence, settings.resamples, settings.bootstrap_seed
    )


def test_stability_is_the_paired_drift_from_each_reference_bn_minus_vanilla(outcomes):
    curve = _specs("stable_sigmoid_inputs", outcomes)
    for reference, words in ((0.01, "from 1 % of training"), (0.5, "from 50 % of training")):
        bn, vanilla = outcomes.tuned["bn"].drift(reference), outcomes.tuned["vanilla"].drift(reference)
        tuned = _one(curve, "tuned", None, words)
        assert tuned.estimate == stats.paired_difference_test(bn, vanilla, outcomes.inference) and tuned.note == ""
        bn, vanilla = (outcomes.shared[v].drift(reference)[:, 0, BOTH_TRAIN].mean(axis=1) for v in ("bn", "vanilla"))
        assert _one(curve, "shared", 0.1, words).estimate == stats.paired_difference_test(
            bn, vanilla, outcomes.inference
        )


def test_seeds_without_a_finite_drift_are_left_out_and_counted(outcomes):
    steps = outcomes.tuned["bn"].curves.steps
    bn = outcomes.tuned["bn"]
    no_spread = {**bn.sigmoid_inputs, (1, 0): synthetic_results.drifting(steps, math.inf)}  # seed 1: infinite drift
    vanilla = outcomes.tuned["vanilla"]
    unmeasured = {**vanilla.sigmoid_inputs, (4, 1): synthetic_results.drifting(steps, math.nan)}  # seed 4: NaN
    filtered = replace(
        outcomes,
        tuned={"vanilla": replace(vanilla, sigmoid_inputs=unmeasured), "bn": replace(bn, sigmoid_inputs=no_spread)},
    )
    spec = _one(_specs("stable_sigmoid_inputs", filtered), "tuned", None, "from 1 % of training")
    kept = [0, 2, 3, 5, 6, 7, 8, 9]
    bn_drift, vanilla_drift = filtered.tuned["bn"].drift(0.01), filtered.tuned["vanilla"].drift(0.01)
    assert np.isinf(bn_drift[1]) and np.isnan(vanilla_drift[4])
    assert spec.estimate == stats.paired_difference_test(bn_drift[kept], vanilla_drift[kept], outcomes.inference)
    assert spec.estimate.n == 8 and spec.note == "2 seed(s) left out: no finite drift"


def test_with_no_finite_drift_at_all_stability_is_not_estimable(outcomes):
    bn = outcomes.tuned["bn"]
    flat = {key: synthetic_results.drifting(curve.steps, math.inf) for key, curve in bn.sigmoid_inputs.items()}
    none = replace(outcomes, tuned={**outcomes.tuned, "bn": replace(bn, sigmoid_inputs=flat)})
    spec = _one(_specs("stable_sigmoid_inputs", none), "tuned", None, "from 1 % of training")
    assert not spec.estimate.estimable and spec.estimate.n == 0
    assert spec.note == f"{len(SEEDS)} seed(s) left out: no finite drift"


def test_a_member_without_a_finite_drift_leaves_its_seed_out_of_the_shared_design(outcomes):
    vanilla = outcomes.shared["vanilla"]
    percentiles = vanilla.sweep.percentiles.copy()
    percentiles[2, 0, 1, 0] = 0.0  # seed 2 at rate 1: a tracked input with no spread at all
    spec = _one(
        _specs("stable_sigmoid_inputs", _with_sweep(outcomes, "vanilla", percentiles=percentiles)),
        "shared",
        0.1,
        "from 1 % of training",
    )
    assert spec.estimate.n == len(SEEDS) - 1


def test_the_usable_rate_is_each_seeds_refined_edge_and_its_grid_edge_bn_over_vanilla(outcomes):
    bn, vanilla = outcomes.shared["bn"].edges, outcomes.shared["vanilla"].edges
    curve = _specs("higher_usable_lr", outcomes)
    refined = _one(curve, "shared", 0.1, "refined edge")
    assert refined.estimate == stats.paired_ratio_test(bn.rates[:, 0], vanilla.rates[:, 0], outcomes.inference)
    # BN trained at every refined rate in seed 3: its edge there is only a lower bound
    assert refined.note == "BN's edge is a lower bound in 1 seed(s): it trained at every rate tried"
    for index, init_std in enumerate(INITS):
        grid = _one(curve, "shared", init_std, "the sweep's grid alone")
        assert grid.estimate == stats.paired_ratio_test(
            bn.coarse[:, index], vanilla.coarse[:, index], outcomes.inference
        )
        assert grid.note == "" and not grid.primary


def test_robustness_to_init_is_the_worst_init_over_the_rates_where_both_train_at_the_papers_init(outcomes):
    curve = _specs("robust_to_init", outcomes)

    def per_seed(variant: str, rates: np.ndarray, init: int | None) -> np.ndarray:
        final = outcomes.shared[variant].sweep.final_accuracy[:, :, rates]
        return (final.min(axis=1) if init is None else final[:, init]).mean(axis=1)

    every = np.arange(3)
    for rates, words in ((BOTH_TRAIN, "rates where both train at the paper's init"), (every, "every swept rate")):
        for init, init_words in ((None, "the worst init std"), (1, "init std 1")):
            spec = _one(curve, "shared", None, f"{init_words}, {words}")
            expected = stats.paired_difference_test(
                per_seed("bn", rates, init), per_seed("vanilla", rates, init), outcomes.inference, bounds=(-1.0, 1.0)
            )
            assert spec.estimate == expected


def test_a_specification_is_decided_on_its_own_p_value_at_the_nominal_level():
    estimate = stats.Estimate(0.02, 0.01, 0.03, n=10, p_value=0.03, test="sign_flip")
    spec = Specification("higher_accuracy", "tuned", None, "choice", estimate)
    assert spec.verdict(0.05, "higher", 0.0) == "holds"
    assert spec.verdict(0.01, "higher", 0.0) == "not shown"
    assert spec.verdict(0.05, "lower", 0.0) == "contradicted"
    assert (
        Specification("t", "shared", 0.1, "c", stats.Estimate(math.nan, None, None, 0)).verdict(0.05, "higher", 0.0)
        == "not estimable"
    )


def _with_sweep(outcomes: Evidence, variant: str, **changes) -> Evidence:
    shared = outcomes.shared[variant]
    changed = replace(shared, sweep=replace(shared.sweep, **changes))
    return replace(outcomes, shared={**outcomes.shared, variant: changed})
