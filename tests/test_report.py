"""The report's reading of the paper's claims follows the numbers: change them and the verdict changes."""

from __future__ import annotations

import copy

import pytest

from src import stats
from src.report import (
    ExampleUnit,
    accuracy_claim,
    convergence_claim,
    learning_rate_claim,
    stability_claim,
)

TARGETS = [0.95, 0.98]


def _variant(**overrides) -> dict:
    section = {
        "lr": 1.0,
        "n_seeds": 5,
        "n_diverged": 0,
        "test_accuracy": {"mean": 0.97, "std": 0.002, "ci_low": 0.968, "ci_high": 0.972},
        "accuracy_auc": 0.95,
        "steps_to_95": {"median": 4000.0, "n_reached": 5},
        "steps_to_98": {"median": None, "n_reached": 0},
        "sigmoid_input": {
            "reference_step": 5000,
            "median_shift_abs": 0.1,
            "median_shift_relative": 0.05,
            "spread_change_relative": 0.1,
        },
        "lr_search": {
            "best_lr": 1.0, "best_value": 0.97, "max_usable_lr": 3.0, "min_diverged_lr": 10.0, "n_trials": 16,
            "n_diverged": 4,
        },
    }  # fmt: skip
    for key, value in overrides.items():
        section[key] = value if not isinstance(value, dict) else {**section[key], **value}
    return section


def _metrics(vanilla: dict | None = None, bn: dict | None = None, **comparison) -> dict:
    vanilla, bn = _variant(**(vanilla or {})), _variant(**(bn or {}))
    ratios = {
        f"steps_ratio_{t}": stats.steps_ratio(
            stats.StepsToTarget(0, vanilla[f"steps_to_{t}"]["median"], 0, 0),
            stats.StepsToTarget(0, bn[f"steps_to_{t}"]["median"], 0, 0),
        )
        for t in ("95", "98")
    }
    difference = {"mean": 0.0, "ci_low": -0.001, "ci_high": 0.001, "p_value": 0.9} | comparison
    return {"vanilla": vanilla, "bn": bn, "comparison": {**ratios, "accuracy_difference": difference}}


def test_fewer_steps_with_bn_at_every_target_reads_as_faster():
    metrics = _metrics(bn={"steps_to_95": {"median": 500.0}, "steps_to_98": {"median": 9000.0, "n_reached": 5}})
    claim = convergence_claim(metrics, TARGETS)
    assert claim.verdict == "holds"
    assert (
        "to 95 %: BN 500 steps (5/5 seeds), vanilla 4,000 steps (5/5 seeds), 8.0× fewer steps with BN" in claim.reading
    )
    assert "to 98 %: BN 9,000 steps (5/5 seeds), vanilla never (0/5 seeds)" in claim.reading


def test_more_steps_with_bn_reads_as_not_faster():
    metrics = _metrics(bn={"steps_to_95": {"median": 8000.0}})
    claim = convergence_claim(metrics, TARGETS)
    assert claim.verdict == "does not hold"
    assert "2.0× more steps with BN" in claim.reading
    assert "neither variant reached 98 %" in claim.reading


def test_faster_at_one_target_and_slower_at_another_is_partly():
    metrics = _metrics(
        vanilla={"steps_to_98": {"median": 20000.0, "n_reached": 5}},
        bn={"steps_to_95": {"median": 6000.0}, "steps_to_98": {"median": 10000.0, "n_reached": 5}},
    )
    assert convergence_claim(metrics, TARGETS).verdict == "partly holds"


def test_more_seeds_reaching_a_target_counts_before_the_median():
    # BN's median is higher, but all five BN seeds got there and only two vanilla ones did
    metrics = _metrics(
        vanilla={"steps_to_95": {"median": 3000.0, "n_reached": 2}}, bn={"steps_to_95": {"median": 3500.0}}
    )
    assert convergence_claim(metrics, [0.95]).verdict == "holds"


def test_a_tie_is_no_evidence_either_way():
    metrics = _metrics(bn={"steps_to_98": {"median": 9000.0, "n_reached": 5}})  # 95 %: both at 4,000 steps
    claim = convergence_claim(metrics, TARGETS)
    assert claim.verdict == "holds"
    assert "vanilla 4,000 steps (5/5 seeds), the same number of steps" in claim.reading
    assert convergence_claim(_metrics(), [0.95]).verdict == "does not hold"


def test_no_target_reached_cannot_be_tested():
    metrics = _metrics(
        vanilla={"steps_to_95": {"median": None, "n_reached": 0}}, bn={"steps_to_95": {"median": None, "n_reached": 0}}
    )
    assert convergence_claim(metrics, TARGETS).verdict == "cannot be tested"


@pytest.mark.parametrize(
    ("difference", "verdict", "phrase"),
    [
        ({"mean": 0.004, "ci_low": 0.002, "ci_high": 0.006, "p_value": 0.001}, "holds", "p = 0.001 (< 0.05)"),
        ({"mean": 0.001, "ci_low": -0.002, "ci_high": 0.004, "p_value": 0.4}, "not shown", "not significantly"),
        ({"mean": -0.004, "ci_low": -0.006, "ci_high": -0.002, "p_value": 0.001}, "does not hold",
         "vanilla is significantly higher"),
        ({"mean": -0.001, "ci_low": -0.004, "ci_high": 0.002, "p_value": 0.5}, "does not hold", "BN is not higher"),
    ],
)  # fmt: skip
def test_the_accuracy_verdict_follows_the_sign_and_welchs_test(difference, verdict, phrase):
    claim = accuracy_claim(_metrics(**difference), confidence=0.95)
    assert claim.verdict == verdict
    assert phrase in claim.reading
    assert f"difference BN − vanilla {difference['mean'] * 100:+.2f} pp" in claim.reading


def test_one_seed_gives_a_direction_but_no_test():
    one_seed = {"std": None, "ci_low": None, "ci_high": None}
    metrics = _metrics(
        vanilla={"n_seeds": 1, "test_accuracy": one_seed},
        bn={"n_seeds": 1, "test_accuracy": one_seed},
        mean=0.01,
        ci_low=None,
        ci_high=None,
        p_value=None,
    )
    claim = accuracy_claim(metrics, confidence=0.95)
    assert claim.verdict == "cannot be tested"
    assert "+1.00 pp" in claim.reading and "fewer than two seeds" in claim.reading


def test_seeds_that_all_score_the_same_give_no_test_and_say_why():
    metrics = _metrics(ci_low=None, ci_high=None, p_value=None)
    claim = accuracy_claim(metrics, confidence=0.95)
    assert claim.verdict == "cannot be tested"
    assert "every seed of both variants scored the same" in claim.reading


def test_a_higher_tuned_and_stable_learning_rate_reads_as_holding():
    metrics = _metrics(bn={"lr_search": {"best_lr": 8.0, "max_usable_lr": 30.0, "min_diverged_lr": None}})
    claim = learning_rate_claim(metrics)
    assert claim.verdict == "holds"
    assert "BN 8, vanilla 1 (8× vanilla's)" in claim.reading
    assert "smallest that diverged: BN none, vanilla 10" in claim.reading


def test_a_lower_tuned_learning_rate_reads_as_not_holding():
    metrics = _metrics(bn={"lr_search": {"best_lr": 0.5, "max_usable_lr": 2.0}})
    assert learning_rate_claim(metrics).verdict == "does not hold"


def test_a_tuned_rate_at_the_top_of_the_usable_range_is_flagged():
    at_top = {"lr_search": {"best_lr": 30.0, "max_usable_lr": 30.0, "min_diverged_lr": None}}
    at_edge = {"lr_search": {"best_lr": 3.0, "max_usable_lr": 3.0}}
    reading = learning_rate_claim(_metrics(vanilla=at_edge, bn=at_top)).reading
    assert "BN's tuned rate is the largest rate tried: its usable range may extend beyond the search." in reading
    assert "Vanilla's tuned rate is its largest usable rate tried, just below one that diverged." in reading


def _example(vanilla_shift: float, bn_shift: float) -> ExampleUnit:
    def drift(shift):
        return stats.PercentileDrift(5000, 50000, shift, spread_at_reference=2.0, spread_at_end=2.0)

    return ExampleUnit(
        seed=0,
        unit=0,
        drift={"vanilla": drift(vanilla_shift), "bn": drift(bn_shift)},
        p50_at_reference={"vanilla": 0.5, "bn": 0.0},
    )


def test_a_drifting_vanilla_and_a_still_bn_read_as_stable():
    metrics = _metrics(
        vanilla={
            "sigmoid_input": {"median_shift_abs": 2.0, "median_shift_relative": 0.8, "spread_change_relative": 1.5}
        }
    )
    claim = stability_claim(metrics, _example(vanilla_shift=-2.0, bn_shift=0.05))
    assert claim.verdict == "holds"
    assert "moved by 0.1 with BN (5% of its 15–85 spread) and 2 without (80%)" in claim.reading
    assert "vanilla median 0.50 → -1.50" in claim.reading


def test_a_bn_distribution_that_moves_more_is_not_stable():
    metrics = _metrics(bn={"sigmoid_input": {"median_shift_relative": 0.5, "spread_change_relative": 0.9}})
    assert stability_claim(metrics, _example(0.0, 1.0)).verdict == "does not hold"


def test_the_metrics_are_not_modified_by_reading_them():
    metrics = _metrics()
    before = copy.deepcopy(metrics)
    for claim in (convergence_claim(metrics, TARGETS), accuracy_claim(metrics, 0.95), learning_rate_claim(metrics)):
        assert claim.reading
    assert metrics == before
