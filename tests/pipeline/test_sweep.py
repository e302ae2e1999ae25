"""Stage sweep@variant: both variants over one grid of learning rate × init std × seed, paired by seed."""

from __future__ import annotations

import csv
import json
import math
import re

import mlflow
import pytest
import torch
import yaml

from pipeline import sweep as sweep_stage
from src.cli import report_user_errors
from src.engine.schedule import eval_schedule
from src.sweep import work
from src.training import runner
from tests import synthetic

STEPS, EVAL_EVERY = 60, 30
RATES, INIT_STDS, SEEDS = [0.1, 1.0, 10.0], [0.1, 1.0], [0, 1]


@pytest.fixture
def project(tmp_path, repo_root, monkeypatch, mlflow_store, one_torch_thread):
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["sweep"].update(
        lr_min=RATES[0],
        lr_max=RATES[-1],
        lrs_per_decade=1,
        init_stds=INIT_STDS,
        seeds=len(SEEDS),
        steps=STEPS,
        eval_every=EVAL_EVERY,
        evals_per_decade=2,
        checkpoint_every=EVAL_EVERY,
    )
    raw["train"].update(tracked_units=2, percentile_examples=50, device="cpu")
    raw["model"]["population_batches"] = 3
    raw["evaluate"]["figure1_lrs"] = [1.0]
    raw["edge"]["init_stds"] = [0.1]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    synthetic.write_processed(tmp_path / "data" / "processed")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_the_stage_writes_one_row_per_member_and_evaluation_seed_first(project, capsys, monkeypatch):
    monkeypatch.setenv("PROGRESS_QUIET_S", "0")  # the units train in a second: their lines from the start
    sweep_stage.main(["--variant", "bn"])

    # with no terminal, the units are counted at each one taken and each unit's steps are logged
    err = capsys.readouterr().err
    counts = re.findall(
        r"^sweep@bn: (\d+) of (\d+) units done, (\d+) running, (\d+) waiting; training \S+ here$", err, re.M
    )
    units = int(counts[0][1])
    assert [int(done) for done, *_ in counts] == list(range(units))
    assert counts[0][2:] == ("1", str(units - 1))  # the unit just taken is running
    assert len(re.findall(rf"^sweep@bn unit \S+: {STEPS} of {STEPS} steps \(100%\), ", err, re.M)) == units, err

    out = project / "results" / "sweep" / "bn"
    grid = [(str(seed), str(std), str(lr)) for seed in SEEDS for std in INIT_STDS for lr in RATES]
    final = _rows(out / "final.csv")
    labels = [(row["seed"], row["init_std"], row["lr"]) for row in final]
    assert [(s, float(d), float(r)) for s, d, r in labels] == [(s, float(d), float(r)) for s, d, r in grid]
    assert all(0.0 <= float(row["test_accuracy"]) <= 1.0 for row in final)
    history = _rows(out / "history.csv")
    steps = eval_schedule(STEPS, EVAL_EVERY, 2)
    assert len(history) == len(steps) * len(grid)
    assert sorted({int(row["step"]) for row in history}) == list(steps)
    percentiles = _rows(out / "sigmoid_inputs.csv")
    assert len(percentiles) == len(steps) * len(grid) * 2  # two tracked units
    assert all(float(row["p15"]) <= float(row["p50"]) <= float(row["p85"]) for row in percentiles)
    summary = json.loads((out / "summary.json").read_text())
    assert summary == {"variant": "bn", "members": len(grid), "steps": STEPS, "device": "cpu"}
    assert not (project / ".checkpoints" / "sweep-bn.pt").exists()


def test_every_member_is_an_mlflow_run_tagged_with_its_setting(project):
    sweep_stage.main(["--variant", "vanilla"])

    (parent,) = mlflow.search_runs(experiment_names=["bn-mnist"], output_format="list")
    children = mlflow.search_runs(experiment_names=["bn-mnist-sweep"], output_format="list")
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parent.info.run_id}
    assert parent.data.tags["stage"] == "sweep" and parent.info.status == "FINISHED"
    settings = {(float(r.data.tags["lr"]), float(r.data.tags["init_std"]), int(r.data.tags["seed"])) for r in children}
    assert settings == {(lr, std, seed) for lr in RATES for std in INIT_STDS for seed in SEEDS}
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.tags["variant"] == "vanilla" and child.data.tags["diverged"] in {"true", "false"}
        assert math.isfinite(child.data.metrics["final_test_accuracy"])
        history = mlflow.MlflowClient().get_metric_history(child.info.run_id, "test_accuracy")
        assert [point.step for point in history] == list(eval_schedule(STEPS, EVAL_EVERY, 2))


def test_both_variants_see_the_same_batches_and_start_from_the_same_draws(project, monkeypatch):
    seen = {}
    real_trainer = runner.Trainer

    def recording_trainer(model, data, schedule):
        trainer = real_trainer(model, data, schedule)
        variant = "bn" if model.batch_norm else "vanilla"
        batches = [trainer._order.next().clone() for _ in range(5)]
        seen[variant] = {"weights": model.hidden[0].weight.detach().clone(), "batches": batches}
        return real_trainer(model, data, schedule)  # a fresh order for the real run

    monkeypatch.setattr(runner, "Trainer", recording_trainer)
    for variant in ("vanilla", "bn"):
        sweep_stage.main(["--variant", variant])

    vanilla, bn = seen["vanilla"], seen["bn"]
    assert all(torch.equal(a, b) for a, b in zip(vanilla["batches"], bn["batches"], strict=True))
    assert vanilla["batches"][0].shape[0] == len(SEEDS)  # one data order per seed, shared by its members
    assert not torch.equal(vanilla["batches"][0][0], vanilla["batches"][0][1])
    # the same N(0, 1) draws per seed in both variants, scaled by each member's init std
    assert torch.equal(vanilla["weights"], bn["weights"])
    per_seed = len(INIT_STDS) * len(RATES)
    torch.testing.assert_close(vanilla["weights"][len(RATES)], vanilla["weights"][0] * INIT_STDS[1] / INIT_STDS[0])
    assert not torch.equal(vanilla["weights"][0], vanilla["weights"][per_seed])  # another seed, other draws


def _cut(project, unit, storage="sqlite:///optuna.db"):
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["sweep"].update(unit=unit, storage=storage)
    (project / "params.yaml").write_text(yaml.safe_dump(raw))


def test_a_stage_interrupted_between_units_resumes_without_training_a_done_unit_again(project, monkeypatch, capsys):
    _cut(project, "seed")
    real_result = work.UnitResult.of
    calls = []

    def interrupted_in_the_second_unit(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_result(*args)

    monkeypatch.setattr(work.UnitResult, "of", interrupted_in_the_second_unit)
    with pytest.raises(KeyboardInterrupt):
        sweep_stage.main(["--variant", "bn"])
    monkeypatch.setattr(work.UnitResult, "of", real_result)
    capsys.readouterr()

    sweep_stage.main(["--variant", "bn"])

    out = capsys.readouterr().out
    assert "in 2 unit(s) of study" in out and ": 1 trained here" in out, out
    final = _rows(project / "results" / "sweep" / "bn" / "final.csv")
    assert len(final) == len(RATES) * len(INIT_STDS) * len(SEEDS)
    runs = mlflow.search_runs(experiment_names=["bn-mnist", "bn-mnist-sweep"], output_format="list")
    assert {run.info.status for run in runs} == {"FINISHED"} and len(runs) == 1 + len(final)


def test_an_unreachable_storage_is_one_line_naming_it_without_its_password(project, capsys):
    _cut(project, "variant", storage="postgresql://sweep:s3cret@127.0.0.1:1/optuna")
    with pytest.raises(SystemExit) as stopped:
        report_user_errors(lambda: sweep_stage.main(["--variant", "bn"]))
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: storage postgresql://sweep:***@127.0.0.1:1/optuna: cannot connect (")
    assert "s3cret" not in line
