"""Every path lives in src/paths.py, relative to the project's root, and dvc.yaml names the same files."""

from __future__ import annotations

from pathlib import Path

import yaml

from src import paths

ROOT = Path(__file__).resolve().parents[1]


def test_every_path_is_relative_to_the_projects_root():
    named = [value for value in vars(paths).values() if isinstance(value, Path)]
    assert named and not [path for path in named if path.is_absolute()]


def test_a_stages_directory_a_models_directory_and_a_checkpoint_are_named_by_stage_variant_and_unit():
    assert paths.stage_dir("sweep", "bn") == Path("results/sweep/bn")
    assert paths.model_dir("vanilla") == Path("models/vanilla")
    assert paths.checkpoint("sweep-bn-seed2") == Path(".checkpoints/sweep-bn-seed2.pt")


def test_dvc_yaml_declares_the_outputs_at_these_paths():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    evaluate = {next(iter(out)) if isinstance(out, dict) else out for out in dvc["stages"]["evaluate"]["outs"]}
    metrics = {next(iter(out)) for out in dvc["stages"]["evaluate"]["metrics"]}
    preprocess = {next(iter(out)) if isinstance(out, dict) else out for out in dvc["stages"]["preprocess"]["outs"]}
    assert {str(paths.METRICS), str(paths.REPORT), str(paths.FIGURES)} <= evaluate
    assert str(paths.HEADLINE) in metrics
    assert {str(paths.PROCESSED_DATA), str(paths.DATA_SUMMARY)} <= preprocess
    assert str(paths.RAW_DATA) in dvc["stages"]["download"]["outs"]
