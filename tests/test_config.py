"""params.yaml is validated once, with one clear message per problem naming the key."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from src.config import (
    NOT_DECIDING,
    STAGE_PARAMS,
    VARIANTS,
    ConfigError,
    Horizon,
    PositiveInt,
    load_params,
    parse_params,
    validate_option,
    with_overrides,
)


@pytest.fixture(scope="module")
def params(repo_root):
    return load_params(repo_root / "params.yaml")


@pytest.fixture
def raw(repo_root):
    return yaml.safe_load((repo_root / "params.yaml").read_text())


def _error_for(raw, section, key, value):
    broken = copy.deepcopy(raw)
    broken[section][key] = value
    with pytest.raises(ConfigError) as caught:
        parse_params(broken)
    return str(caught.value)


def test_the_repository_params_are_valid(repo_root):
    params = load_params(repo_root / "params.yaml")
    assert params.train.batch_size == 60 and params.train.steps == 50_000
    assert params.train.seed_list == list(range(params.train.seeds))
    assert set(VARIANTS) == {"vanilla", "bn"}


def test_the_noisy_bn_noise_needs_an_ordered_std_range_and_no_stage_reads_it(raw):
    assert "noisy_bn: std_min must be <= std_max, got std_min=2.0" in _error_for(raw, "noisy_bn", "std_min", 2.0)
    # the engine's noisy BN net is no variant of the study: its noise decides no stage's numbers or identity
    assert not any(key.split(".")[0] == "noisy_bn" for keys in STAGE_PARAMS.values() for key in keys)


def test_a_misspelt_key_is_named_with_a_suggestion(raw):
    raw["train"]["stepz"] = 10
    with pytest.raises(ConfigError, match=r"unknown key 'train\.stepz' \(did you mean 'steps'\?\)"):
        parse_params(raw)


def test_a_missing_key_is_named(raw):
    del raw["tune"]["trials"]
    with pytest.raises(ConfigError, match=r"missing key 'tune\.trials'"):
        parse_params(raw)


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("tune", "lr_min", -0.1, r"tune\.lr_min: Input should be greater than 0, got -0\.1"),
        ("train", "steps", 0, r"train\.steps: Input should be greater than 0, got 0"),
        ("train", "steps", "5000", r"train\.steps: Input should be a valid integer, got '5000'"),
        ("train", "device", "tpu", r"train\.device: .*'auto', 'cpu', 'cuda' or 'mps', got 'tpu'"),
        ("model", "bn_eps", "1e-5", r"model\.bn_eps: .*got '1e-5' \(YAML 1\.1 reads .* write 1\.0e-5\)"),
        ("train", "batch_size", 1, r"train\.batch_size: must be >= 2: BN.*got 1"),
    ],
)
def test_a_bad_value_is_named_with_what_would_be_right(raw, section, key, value, expected):
    message = _error_for(raw, section, key, value)
    assert "\n" not in message
    assert re.search(expected, message), message


def test_an_inverted_learning_rate_range_is_refused(raw):
    message = _error_for(raw, "tune", "lr_min", 500.0)
    assert message == "params.yaml: tune: lr_min must be < lr_max, got lr_min=500.0, lr_max=100.0"


def test_a_missing_or_broken_file_is_one_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_params(tmp_path / "absent.yaml")
    broken = tmp_path / "params.yaml"
    broken.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(broken)


def test_overrides_replace_dotted_keys_and_keep_the_rest(raw):
    params = parse_params(raw)
    assert with_overrides(params, {}) == params
    changed = with_overrides(params, {"tune.trials": 48, "tune.timeout_s": 60.0})
    assert (changed.tune.trials, changed.tune.timeout_s) == (48, 60.0)
    assert changed.model_copy(update={"tune": params.tune}) == params


def test_a_bad_override_is_the_line_a_bad_file_gives_with_its_own_source(raw):
    in_file = _error_for(raw, "tune", "trials", 0)
    with pytest.raises(ConfigError) as caught:
        with_overrides(parse_params(raw), {"tune.trials": 0})
    assert in_file == "params.yaml: tune.trials: Input should be greater than 0, got 0"
    assert str(caught.value) == "command line: tune.trials: Input should be greater than 0, got 0"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"tune.trials": "48"}, "command line: tune.trials: Input should be a valid integer, got '48'"),
        ({"tune.trial": 48}, "command line: unknown key 'tune.trial' (did you mean 'trials'?)"),
        ({"tune.lr_min": 500.0}, "command line: tune: lr_min must be < lr_max, got lr_min=500.0, lr_max=100.0"),
        ({"train.tracked_units": 10**6}, "command line: train.tracked_units must be <= model.hidden_units"),
    ],
)
def test_overrides_are_strict_and_cross_checked_like_the_file(raw, overrides, expected):
    with pytest.raises(ConfigError) as caught:
        with_overrides(parse_params(raw), overrides)
    assert str(caught.value).startswith(expected)


def test_an_option_outside_params_yaml_is_validated_by_its_type_in_the_same_format():
    assert validate_option(PositiveInt, 3, "--heartbeat") == 3
    with pytest.raises(ConfigError) as caught:
        validate_option(PositiveInt, 0, "--heartbeat")
    assert str(caught.value) == "command line: --heartbeat: Input should be greater than 0, got 0"


# --- the edge and evaluate sections: the analysis stated before the data ---------------------------------------


def test_the_repository_states_its_analysis_and_its_seeds(repo_root):
    params = load_params(repo_root / "params.yaml")
    settings = params.evaluate
    assert params.train.seeds == params.sweep.seeds == 10
    assert settings.convergence_climb in settings.convergence_climbs
    assert settings.drift_reference in settings.drift_references
    assert settings.did_not_train_below < settings.usable_accuracy
    assert params.model.init_std in params.edge.init_stds and set(params.edge.init_stds) <= set(params.sweep.init_stds)


@pytest.mark.parametrize(("confidence", "alpha"), [(0.95, 0.05), (0.99, 0.01), (0.9, 0.1)])
def test_alpha_is_one_less_the_confidence_without_a_rounding_tail(raw, confidence, alpha):
    raw["evaluate"]["confidence"] = confidence
    assert parse_params(raw).evaluate.alpha == alpha  # 1 − 0.9 is 0.09999999999999998 in floats


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("convergence_climb", 0.8, "evaluate: convergence_climbs must include convergence_climb (0.8)"),
        ("drift_reference", 0.2, "evaluate: drift_references must include drift_reference (0.2)"),
        ("did_not_train_below", 0.9, "evaluate: did_not_train_below must be below usable_accuracy"),
        ("did_not_train_below", 0.95, "evaluate: did_not_train_below must be below usable_accuracy"),
        ("seed_test", "t_test", "evaluate.seed_test: Input should be 'sign_flip' or 'signed_rank', got 't_test'"),
        ("accuracy_test", "images", "evaluate.accuracy_test: Input should be 'seeds_and_images' or 'seeds'"),
        ("interval", "bca", "evaluate.interval: Input should be 'studentized', 'BCa', 't' or 'percentile', got 'bca'"),
        ("correction", "bonferroni", "evaluate.correction: Input should be 'holm' or 'bh', got 'bonferroni'"),
        ("map_correction", None, "evaluate.map_correction: Input should be 'holm' or 'bh', got None"),
        ("resamples", 99, "evaluate.resamples: Input should be greater than or equal to 999, got 99"),
        ("both_train_share", 0.0, "evaluate.both_train_share: Input should be greater than 0, got 0.0"),
        ("convergence_climbs", [], "evaluate.convergence_climbs: List should have at least 1 item"),
    ],
)
def test_an_analysis_choice_off_its_curve_or_out_of_range_is_named(raw, key, value, expected):
    message = _error_for(raw, "evaluate", key, value)
    assert message.startswith(f"params.yaml: {expected}"), message


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"edge": {"init_stds": [0.1, 0.5]}},
            "edge.init_stds must be swept init stds ([0.01, 0.1, 1.0]), got [0.1, 0.5]",
        ),
        ({"edge": {"init_stds": [1.0]}}, "edge.init_stds must include model.init_std (0.1), where the usable-rate"),
        ({"model": {"init_std": 0.5}}, "sweep.init_stds must include model.init_std (0.5)"),
        ({"evaluate": {"figure1_lrs": [0.2]}}, "evaluate.figure1_lrs: 0.2 is not a swept learning rate (0.01, 0.03162"),
        ({"edge": {"rates_between": 0}}, "edge.rates_between: Input should be greater than or equal to 1, got 0"),
    ],
)
def test_the_edge_sections_inits_and_the_papers_init_must_be_swept(raw, changes, expected):
    for section, values in changes.items():
        raw[section].update(values)
    with pytest.raises(ConfigError) as caught:
        parse_params(raw)
    assert str(caught.value).startswith(f"params.yaml: {expected}"), str(caught.value)


# --- what each stage reads, and of that what decides its numbers -------------------------------------------------

RUNS = {
    "tune": lambda params: params.tune_run,
    "train": lambda params: params.train_run,
    "sweep": lambda params: params.sweep_run,
    "edge": lambda params: params.edge_run,
}


def _leaves(tree: dict, prefix: str = "") -> dict[str, object]:
    """Dotted path -> value of every leaf of a nested dict (a list is a leaf)."""
    leaves = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def _under(path: str, paths: tuple[str, ...]) -> bool:
    """Whether `path` is one of `paths` or inside one of them ("train.steps" is inside "train")."""
    return any(path == top or path.startswith(f"{top}.") for top in paths)


def test_stage_params_keep_the_listed_sections_whole_and_the_listed_keys_alone(params):
    everything = params.model_dump()
    assert params.listed(STAGE_PARAMS["tune"]) == {
        "data": {"binarize": everything["data"]["binarize"]},
        "model": everything["model"],
        "tune": everything["tune"],
        "train": {key: everything["train"][key] for key in ("batch_size", "momentum", "device")},
        "tracking": everything["tracking"],
    }


@pytest.mark.parametrize("stage", STAGE_PARAMS)
def test_stage_params_are_every_param_the_stage_lists_and_no_other(params, stage):
    everything = _leaves(params.model_dump())
    listed = {path: value for path, value in everything.items() if _under(path, STAGE_PARAMS[stage])}
    assert _leaves(params.listed(STAGE_PARAMS[stage])) == listed


@pytest.mark.parametrize("stage", RUNS)
def test_the_deciding_params_are_the_stages_params_less_those_that_do_not_change_its_numbers(params, stage):
    read = _leaves(params.listed(STAGE_PARAMS[stage]))
    deciding = RUNS[stage](params).deciding
    expected = {path: value for path, value in read.items() if not _under(path, NOT_DECIDING.get(stage, ()))}
    assert _leaves(deciding) == expected
    assert all(section != {} for section in deciding.values()), "a section emptied by the dropping is dropped too"


def test_only_what_a_stage_reads_can_be_declared_not_deciding():
    assert set(NOT_DECIDING) <= set(STAGE_PARAMS)
    for stage, paths in NOT_DECIDING.items():
        assert all(_under(path, STAGE_PARAMS[stage]) for path in paths), stage


def test_a_studys_budget_storage_and_device_setting_do_not_decide_its_numbers_and_its_steps_do(params):
    deciding = params.tune_run.deciding
    assert "tracking" not in deciding and "device" not in deciding["train"]
    ends_otherwise = {"tune.trials": 99, "tune.storage": "postgresql://db-host/optuna", "train.device": "cpu"}
    assert with_overrides(params, ends_otherwise).tune_run.deciding == deciding
    assert with_overrides(params, {"tune.steps": 999}).tune_run.deciding != deciding


@pytest.mark.parametrize("stage", RUNS)
def test_switching_system_metrics_off_keeps_every_identity_and_reaches_the_stage_run(params, stage):
    switched = with_overrides(params, {"tracking.system_metrics": False})
    assert params.tracking.system_metrics and RUNS[stage](params).system_metrics
    assert not RUNS[stage](switched).system_metrics
    assert RUNS[stage](switched).deciding == RUNS[stage](params).deciding, "a checkpoint or study would be refused"


@pytest.mark.parametrize("stage", ["train", "sweep", "edge"])
def test_the_experiment_stays_in_a_training_stages_identity_as_its_checkpoints_hold_runs_in_it(params, stage):
    moved = with_overrides(params, {"tracking.experiment": "elsewhere"})
    assert RUNS[stage](moved).deciding != RUNS[stage](params).deciding


def test_edges_numbers_are_decided_by_the_sweeps_schedule_its_own_rates_and_the_usable_cut_not_its_checkpoints(params):
    deciding = params.edge_run.deciding
    assert list(deciding) == ["data", "model", "sweep", "edge", "evaluate", "train", "tracking"]
    assert deciding["evaluate"] == {"usable_accuracy": params.evaluate.usable_accuracy}  # which swept rates trained
    assert "checkpoint_every" not in deciding["sweep"] and "checkpoint_every" not in deciding["edge"]
    assert "device" not in deciding["train"]
    ends_otherwise = {
        "edge.checkpoint_every": 7,
        "sweep.checkpoint_every": 7,
        "train.device": "cpu",
        "evaluate.confidence": 0.99,
        "evaluate.correction": "bh",
    }
    assert with_overrides(params, ends_otherwise).edge_run.deciding == deciding
    for decides in ({"edge.rates_between": 9}, {"evaluate.usable_accuracy": 0.8}, {"sweep.steps": 999}):
        assert with_overrides(params, decides).edge_run.deciding != deciding, decides
    # the sweep's own numbers do not depend on the usable cut or on edge@'s settings
    assert (
        with_overrides(params, {"evaluate.usable_accuracy": 0.8, "edge.rates_between": 9}).sweep_run.deciding
        == params.sweep_run.deciding
    )


def test_a_training_run_composes_its_stages_horizon_with_the_sections_every_stage_shares(params):
    train, sweep, edge, tune = params.train_run, params.sweep_run, params.edge_run, params.tune_run
    assert train.horizon == Horizon(params.train.steps, params.train.eval_every, params.train.evals_per_decade)
    assert (
        sweep.horizon
        == edge.horizon
        == Horizon(params.sweep.steps, params.sweep.eval_every, params.sweep.evals_per_decade)
    )
    assert tune.horizon == Horizon(params.tune.steps, params.tune.eval_every, params.tune.evals_per_decade)
    for run in (train, sweep, edge, tune):
        assert (run.model, run.batch_size, run.momentum, run.device) == (
            params.model,
            params.train.batch_size,
            params.train.momentum,
            params.train.device,
        )
        assert run.read == params.listed(STAGE_PARAMS[run.stage])
    assert (train.checkpoint_every, sweep.checkpoint_every, edge.checkpoint_every, tune.checkpoint_every) == (
        params.train.checkpoint_every,
        params.sweep.checkpoint_every,
        params.edge.checkpoint_every,
        None,
    )
    assert tune.tracked_units == 0 and train.tracked_units == sweep.tracked_units == params.train.tracked_units
