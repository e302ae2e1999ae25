"""results/metrics.json: built from the comparison with a fixed schema of plain JSON values (each primary claim with
its design, test, n, interval, p-value before and after the family's correction, verdict and specification counts;
every specification curve; the map with its correction and both counts), written and read back as it was built;
results/headline.json, the few numbers DVC compares; and the file printed for a person (`python -m src.metrics`)
within 120 columns, every claim and every cell."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from src.analysis import stats
from src.analysis.claims import PRIMARY, SECTIONS
from src.config import VARIANTS
from src.metrics import number_format, schema
from src.metrics.build import claim_metrics, design_text
from src.metrics.schema import HEADLINE_NAMES
from tests import synthetic_results
from tests.synthetic_results import SEEDS, SWEEP_INIT_STDS, SWEEP_RATES

KEYS = [f"{topic}_{design}" for topic, design in PRIMARY]


ESTIMATE_KEYS = ["effect", "ci_low", "ci_high", "p_value", "n"]


def test_the_metrics_have_a_fixed_schema_of_plain_json_values(content):
    variant_keys = [
        "lr",
        "n_seeds",
        "n_diverged",
        "test_accuracy",
        "test_accuracy_moving_average",
        "test_loss_mean",
        "train_accuracy_mean",
        "train_loss_mean",
        "train_test_gap",
        "accuracy_auc",
        "steps_to_90",
        "steps_to_95",
        "steps_to_99",
        "sigmoid_input_drift",
        "lr_search",
    ]
    assert list(content) == ["claims", "specifications", "vanilla", "bn", "horizon", "robustness_map"]
    for claim in content["claims"].values():
        assert list(claim) == [
            *ESTIMATE_KEYS,
            "title",
            "section",
            "design",
            "statistic",
            "scale",
            "test",
            "p_adjusted",
            "correction",
            "verdict",
            "specifications",
            "seeds_needed",
            "note",
        ]
        assert list(claim["specifications"]) == [
            "total",
            "agreeing",
            "holds",
            "not shown",
            "contradicted",
            "not estimable",
        ]
    for curve in content["specifications"].values():
        for spec in curve:
            assert list(spec) == [*ESTIMATE_KEYS, "design", "init_std", "choice", "primary", "verdict", "note"]
    for variant in VARIANTS:
        section = content[variant]
        assert list(section) == variant_keys
        assert list(section["test_accuracy"]) == ["mean", "std", "ci_low", "ci_high"]
        assert list(section["steps_to_95"]) == ["median", "n_reached"]
        assert list(section["sigmoid_input_drift"]) == ["reference_step", "relative", "median_shift_abs"]
        assert list(section["lr_search"]) == ["best_lr", "best_value", "n_trials", "n_diverged"]
    for check in content["horizon"].values():
        assert list(check) == [*ESTIMATE_KEYS, "tuned_lr", "nearest_swept_lr", "best_swept_lr", "within_seed_noise"]
    the_map = content["robustness_map"]
    assert list(the_map) == [
        "correction",
        "cells",
        "better",
        "worse",
        "better_uncorrected",
        "worse_uncorrected",
        "grid",
    ]
    for row in the_map["grid"].values():
        for cell in row.values():
            assert list(cell) == [
                *ESTIMATE_KEYS,
                "vanilla",
                "bn",
                "p_adjusted",
                "side",
                "side_uncorrected",
                "did_not_train_vanilla",
                "did_not_train_bn",
                "both_failed",
            ]
    for leaf in _leaves(content):
        assert leaf is None or type(leaf) in (int, float, bool, str), leaf
    json.dumps(content, allow_nan=False)  # strict JSON: no NaN or Infinity


def test_each_claim_names_its_design_test_n_interval_p_values_correction_verdict_and_curve(comparison, content):
    assert list(content["claims"]) == [claim.key for claim in comparison.claims] == KEYS
    for claim in comparison.claims:
        written, estimate, spec = content["claims"][claim.key], claim.estimate, claim.primary
        assert {key: written[key] for key in ESTIMATE_KEYS} == {
            "effect": estimate.effect,
            "ci_low": estimate.ci_low,
            "ci_high": estimate.ci_high,
            "p_value": estimate.p_value,
            "n": len(SEEDS),
        }
        assert written["p_adjusted"] == claim.adjusted_p and written["correction"] == "Holm"
        assert written["verdict"] == claim.verdict and written["seeds_needed"] == claim.seeds_needed
        assert (written["title"], written["statistic"], written["scale"]) == (
            claim.topic.title,
            claim.topic.statistic,
            claim.topic.scale,
        )
        assert written["section"] == SECTIONS[claim.topic.section]
        assert written["design"] == design_text(spec) and written["design"].startswith(f"{spec.design}: ")
        assert spec.choice in written["design"] and written["note"] == spec.note
        assert written["test"] == number_format.test_text(estimate)
        counts = written["specifications"]
        assert counts["total"] == len(claim.design_curve) == sum(counts[v] for v in schema.VERDICTS)
        assert counts["agreeing"] == claim.agreeing == counts[claim.verdict]
        assert {s.design for s in claim.design_curve} == {spec.design}
    # per design, not summed over the two designs, which decide two claims on the same seeds
    accuracy = {key: content["claims"][f"higher_accuracy_{key}"]["specifications"] for key in ("shared", "tuned")}
    assert {key: (counts["agreeing"], counts["total"]) for key, counts in accuracy.items()} == {
        "shared": (3, 6),  # init std 1.0's three are not estimable: no rate where both nets train
        "tuned": (3, 3),
    }


def test_every_interval_lies_inside_its_statistics_possible_range(content):
    for claim in content["claims"].values():
        low, high = claim["ci_low"], claim["ci_high"]
        if claim["scale"] == "accuracy":
            assert -1 <= low <= claim["effect"] <= high <= 1
        elif claim["scale"] == "ratio":
            assert 0 < low <= claim["effect"] <= high


def test_the_tests_and_the_papers_sections_are_named_in_words(content):
    claims = content["claims"]
    assert claims["higher_accuracy_tuned"]["test"].startswith("exact sign-flip permutation test of the mean over 10")
    assert claims["faster_convergence_shared"]["test"] == (
        "exact sign-flip permutation test of the mean over 10 paired seeds; studentized bootstrap interval (symmetric"
        " bootstrap-t)"
    )
    assert claims["faster_convergence_tuned"]["section"] == "the paper's Section 4.1 (MNIST)"
    assert claims["robust_to_init_shared"]["section"].startswith("an extension of the paper's Section 3.3")


def test_every_specification_of_every_curve_is_written_in_curve_order_with_its_own_verdict(comparison, content):
    curves = {claim.topic.key: claim for claim in comparison.claims}
    assert list(content["specifications"]) == list(curves)
    for topic, claim in curves.items():
        written = content["specifications"][topic]
        assert len(written) == len(claim.curve)
        for entry, spec, verdict in zip(written, claim.curve, claim.spec_verdicts(), strict=True):
            assert (entry["design"], entry["init_std"], entry["choice"], entry["primary"], entry["note"]) == (
                spec.design,
                spec.init_std,
                spec.choice,
                spec.primary,
                spec.note,
            )
            assert entry["verdict"] == verdict
            assert entry["effect"] == (None if math.isnan(spec.estimate.effect) else spec.estimate.effect)
    # the shared design at init std 1.0 has no rate where both nets train: no effect, no interval, no p-value
    unmeasured = [e for e in content["specifications"]["faster_convergence"] if e["init_std"] == 1.0]
    assert {(e["effect"], e["ci_low"], e["p_value"], e["n"], e["verdict"]) for e in unmeasured} == {
        (None, None, None, 0, "not estimable")
    }


def _claim_with(comparison, estimate: stats.Estimate):
    claim = comparison.claims[0]
    return dataclasses.replace(
        claim, primary=dataclasses.replace(claim.primary, estimate=estimate), adjusted_p=None, verdict="not estimable"
    )


@pytest.mark.parametrize("missing", [math.nan, math.inf, np.float64(-np.inf)])
def test_a_number_json_cannot_spell_is_written_as_null(comparison, missing):
    written = claim_metrics(_claim_with(comparison, stats.Estimate(missing, None, None, 0)), "Holm")
    assert (written.effect, written.ci_low, written.ci_high, written.p_value, written.n) == (None, None, None, None, 0)
    assert written.p_adjusted is None and written.seeds_needed is None
    assert math.isnan(written.estimate.effect)  # a number again where the printer reads it
    json.dumps(written.model_dump(), allow_nan=False)


def test_numpy_numbers_are_written_as_python_numbers(comparison):
    estimate = stats.Estimate(np.float64(0.5), np.float64(0.25), np.float64(0.75), 3, np.float64(0.01))
    written = claim_metrics(_claim_with(comparison, estimate), "Holm")
    assert [type(value) for value in (written.effect, written.ci_low, written.ci_high, written.p_value)] == [float] * 4


def test_the_variant_metrics_follow_the_known_synthetic_outcome(content):
    vanilla, bn = content["vanilla"], content["bn"]
    # train@'s curves climb with time constants 100 (BN) and 250 steps (vanilla), evaluated every 100 steps
    assert bn["steps_to_95"] == {"median": 300.0, "n_reached": 10}
    assert vanilla["steps_to_95"] == {"median": 800.0, "n_reached": 10}
    assert bn["steps_to_99"] == vanilla["steps_to_99"] == {"median": None, "n_reached": 0}
    assert bn["accuracy_auc"] > vanilla["accuracy_auc"]
    assert vanilla["sigmoid_input_drift"]["relative"] > 0.5 > 0.01 > bn["sigmoid_input_drift"]["relative"]
    assert vanilla["sigmoid_input_drift"]["reference_step"] == 100  # the first evaluation at 1 % of 1,000 steps
    assert (vanilla["lr"], bn["lr"]) == (0.2, 5.0)
    assert vanilla["lr_search"] == {"best_lr": 0.2, "best_value": 0.93, "n_trials": 6, "n_diverged": 3}
    assert bn["lr_search"]["n_diverged"] == 1
    assert (vanilla["n_seeds"], vanilla["n_diverged"], bn["n_diverged"]) == (10, 0, 0)


def test_bns_final_accuracy_is_given_under_both_inference_rules(comparison, content):
    inference = comparison.evidence.inference
    for variant, outcome in comparison.tuned.items():
        section = content[variant]
        # Algorithm 2: the saved models' predictions; its interval is the plan's (evaluate.interval) interval of the
        # mean over seeds, inside an accuracy's possible range
        accuracy, final = section["test_accuracy"], outcome.final_accuracy
        assert (accuracy["mean"], accuracy["std"]) == (pytest.approx(final.mean()), pytest.approx(final.std(ddof=1)))
        low, high, _ = stats.mean_interval(final, inference, bounds=(0.0, 1.0))
        assert (accuracy["ci_low"], accuracy["ci_high"]) == (low, high)
        assert 0.0 <= accuracy["ci_low"] < accuracy["mean"] < accuracy["ci_high"] <= 1.0
        train_accuracy = np.mean([scores.accuracy for scores in outcome.train.values()])
        assert section["train_test_gap"] == pytest.approx(train_accuracy - outcome.final_accuracy.mean())
        # moving averages: the history's last evaluation
        last = [synthetic_results.accuracy_curve(variant, seed)[-1] for seed in SEEDS]
        assert section["test_accuracy_moving_average"] == pytest.approx(np.mean(last))
    # BN's seeds are at 94-100 %: the plan's studentized interval, mean ± q·s/√n, passes 100 % and is cut there
    low, high, method = stats.mean_interval(comparison.tuned["bn"].final_accuracy, inference)
    assert (method, inference.interval) == ("studentized", "studentized") and high > 1.0
    assert (content["bn"]["test_accuracy"]["ci_low"], content["bn"]["test_accuracy"]["ci_high"]) == (low, 1.0)
    # the synthetic histories and models disagree on purpose, so mixing the two up cannot pass
    assert content["vanilla"]["test_accuracy_moving_average"] > 0.9 > content["vanilla"]["test_accuracy"]["mean"]


def test_the_robustness_map_states_its_correction_both_counts_and_every_cell(comparison, content):
    the_map = content["robustness_map"]
    assert the_map["correction"] == "Benjamini–Hochberg"
    assert {k: the_map[k] for k in ("cells", "better", "worse", "better_uncorrected", "worse_uncorrected")} == {
        "cells": 6,
        "better": 4,
        "worse": 1,
        "better_uncorrected": 4,
        "worse_uncorrected": 1,
    }
    grid = the_map["grid"]
    assert list(grid) == ["init_std_0.1", "init_std_1"]
    for i, init_std in enumerate(SWEEP_INIT_STDS):
        row = grid[f"init_std_{init_std:g}"]
        assert list(row) == ["lr_0.1", "lr_1", "lr_10"]
        for j, lr in enumerate(SWEEP_RATES):
            written, cell = row[f"lr_{lr:g}"], comparison.cells[i * len(SWEEP_RATES) + j]
            means = {v: synthetic_results.sweep_final_accuracy(v)[:, i, j].mean() for v in VARIANTS}
            assert (written["vanilla"], written["bn"]) == (pytest.approx(means["vanilla"]), pytest.approx(means["bn"]))
            assert (written["effect"], written["ci_low"], written["ci_high"], written["p_value"]) == (
                cell.difference.effect,
                cell.difference.ci_low,
                cell.difference.ci_high,
                cell.difference.p_value,
            )
            assert (written["p_adjusted"], written["side"], written["side_uncorrected"]) == (
                cell.adjusted_p,
                cell.side,
                cell.side_uncorrected,
            )
            assert (written["did_not_train_vanilla"], written["did_not_train_bn"], written["both_failed"]) == (
                cell.did_not_train["vanilla"],
                cell.did_not_train["bn"],
                cell.both_failed,
            )
    assert grid["init_std_1"]["lr_10"]["did_not_train_bn"] == 1.0 and grid["init_std_1"]["lr_10"]["side"] is None
    # neither net trains at init std 1.0, rate 10 (BN fails there only); vanilla never trains at init std 1.0
    failed = [(init_std, lr) for init_std, row in grid.items() for lr, cell in row.items() if cell["both_failed"]]
    assert failed == [("init_std_1", "lr_10")]


def test_the_horizon_check_compares_each_tuned_rate_with_the_best_swept_rate(content):
    horizon = content["horizon"]
    assert list(horizon) == list(VARIANTS)
    # vanilla, tuned at 0.2: the nearest swept rate (0.1) is its best one; no shortfall to estimate
    assert horizon["vanilla"] == {
        "effect": 0.0,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "n": 10,
        "tuned_lr": 0.2,
        "nearest_swept_lr": 0.1,
        "best_swept_lr": 0.1,
        "within_seed_noise": True,
    }
    # BN, tuned at 5: the nearest swept rate is 10, its best is 1, better in every seed
    bn = horizon["bn"]
    assert (bn["tuned_lr"], bn["nearest_swept_lr"], bn["best_swept_lr"]) == (5.0, 10.0, 1.0)
    assert bn["ci_low"] > 0 and bn["within_seed_noise"] is False


def test_the_headline_is_each_claims_verdict_and_effect_each_variants_rate_and_accuracy_and_the_maps_counts(built):
    headline = built.headline()
    leaves = list(_leaves(headline))
    assert len(leaves) <= 30
    assert list(headline) == ["verdict", "effect", "vanilla", "bn", "map"]
    assert list(HEADLINE_NAMES) == KEYS, "every primary claim has a short name, in the claims' order"
    short = {HEADLINE_NAMES[key]: claim for key, claim in built.claims.items()}
    assert headline["verdict"] == {name: claim.verdict for name, claim in short.items()}
    assert headline["effect"] == {name: claim.effect for name, claim in short.items()}
    assert headline["bn"] == {"lr": built.bn.lr, "acc": built.bn.test_accuracy.mean}
    assert headline["map"] == {"better": 4, "worse": 1}
    uncorrected = built.robustness_map.model_copy(update={"better_uncorrected": 6, "worse_uncorrected": 0})
    assert built.model_copy(update={"robustness_map": uncorrected}).headline()["map"] == {"better": 4, "worse": 1}
    # dvc exp show names a column by its path: the longest stays short
    assert max(len(path) for path in _paths(headline)) <= 20
    json.dumps(headline, allow_nan=False)


def _paths(tree: dict, prefix: str = "") -> list[str]:
    """Every leaf's dotted path, as `dvc metrics show` names it."""
    paths = []
    for key, value in tree.items():
        paths += _paths(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return paths


def _leaves(tree):
    for value in tree.values() if isinstance(tree, dict) else tree:
        if isinstance(value, dict | list):
            yield from _leaves(value)
        else:
            yield value
