"""params.yaml is validated once, with one clear message per problem naming the key."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from src.config import VARIANTS, ConfigError, load_params, parse_params


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
