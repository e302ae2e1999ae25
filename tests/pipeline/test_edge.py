"""Stage edge@variant: each seed's largest usable learning rate, refined between the sweep's grid rates. From
sweep@'s final.csv it trains, per seed and init std of params.edge, `rates_between` rates strictly between the seed's
largest usable swept rate and the next one up, as the sweep trains its members (its schedule, seeds, data orders and
initial draws); it resumes from a checkpoint made for the same members, and only for them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from pipeline import edge as edge_stage
from src import paths
from src.cli import report_user_errors
from src.config import load_params
from src.engine.schedule import eval_schedule, schedule_for
from src.engine.trainer import Evaluation
from src.results.edge import read_edge_final
from src.results.members import write_final
from src.training import checkpoint, runner
from src.training.members import MemberTable
from tests import synthetic

STEPS, EVAL_EVERY, CHECKPOINT_EVERY = 60, 30, 30
RATES, INIT_STDS, SEEDS = [0.1, 1.0, 10.0], [0.1, 1.0], [0, 1]
RATES_BETWEEN = 2
# sweep@'s final test accuracy at init std 0.1, per seed and rate: seed 0 trains up to rate 1, seed 1 at 0.1 only
# (at rate 1 it ends above the usable cut but diverged); init std 1.0 is not refined
SWEPT = {0: [0.95, 0.93, 0.10], 1: [0.96, 0.97, 0.10]}
DIVERGED = {(1, 1.0)}  # (seed, rate) at init std 0.1
# so the refined rates lie between 1 and 10 for seed 0, between 0.1 and 1 for seed 1: two each, a factor 10^(1/3) apart
THIRD = 10 ** (1 / 3)
EXPECTED = [(1.0 * THIRD, 0), (1.0 * THIRD**2, 0), (0.1 * THIRD, 1), (0.1 * THIRD**2, 1)]  # (lr, seed)


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
    raw["edge"].update(rates_between=RATES_BETWEEN, init_stds=[0.1], checkpoint_every=CHECKPOINT_EVERY)
    # train@'s schedule differs from the sweep's, so a stage that took it would show (and stay short)
    raw["train"].update(steps=10, eval_every=5, tracked_units=2, percentile_examples=50, device="cpu")
    raw["model"]["population_batches"] = 3
    raw["evaluate"]["figure1_lrs"] = [1.0]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    synthetic.write_processed(tmp_path / "data" / "processed")
    monkeypatch.chdir(tmp_path)
    for variant in ("vanilla", "bn"):
        write_sweep_final(variant, SWEPT, DIVERGED)
    return tmp_path


def write_sweep_final(variant: str, swept: dict[int, list[float]], diverged: set[tuple[int, float]]) -> None:
    """results/sweep/<variant>/final.csv: at init std 0.1 seed s ends at swept[s][rate], at 1.0 at chance."""
    members = MemberTable.grid(load_params().sweep)
    cells = list(zip(members.lr, members.init_std, members.seed, strict=True))
    accuracy = [swept[seed][RATES.index(round(lr, 6))] if std == 0.1 else 0.1 for lr, std, seed in cells]
    bad = [std == 0.1 and (seed, round(lr, 6)) in diverged for lr, std, seed in cells]
    final = Evaluation(step=STEPS, accuracy=accuracy, loss=[1.0] * len(cells), diverged=bad)
    write_final(paths.stage_dir("sweep", variant), final, members)


def _rows(path: Path) -> list[dict]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def _refined() -> MemberTable:
    brackets = [(0, 0.1, 1.0, 10.0), (1, 0.1, 0.1, 1.0)]
    return MemberTable.refining(brackets, RATES_BETWEEN)


def test_the_stage_trains_each_seeds_refined_rates_and_writes_their_final_results(project):
    edge_stage.main(["--variant", "bn"])

    out = project / "results" / "edge" / "bn"
    rows = _rows(out / "final.csv")
    assert list(rows[0]) == ["lr", "init_std", "seed", "test_accuracy", "test_loss", "diverged"]
    assert [(float(row["lr"]), int(row["seed"])) for row in rows] == [
        (pytest.approx(lr), seed) for lr, seed in EXPECTED
    ]
    assert {float(row["init_std"]) for row in rows} == {0.1}
    for row in rows:  # each strictly inside its seed's bracket
        low = {0: 1.0, 1: 0.1}[int(row["seed"])]
        assert low < float(row["lr"]) < 10 * low
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0 and row["diverged"] in {"True", "False"}
    # exactly the members evaluate will ask for, read back by its reader
    accuracy, diverged = read_edge_final("bn", _refined())
    assert accuracy.tolist() == [float(row["test_accuracy"]) for row in rows] and diverged.dtype == bool
    summary = json.loads((out / "summary.json").read_text())
    assert summary == {"variant": "bn", "members": len(EXPECTED), "steps": STEPS, "device": "cpu"}
    assert not (project / paths.CHECKPOINTS / "edge-bn.pt").exists()


def test_every_refined_member_is_an_mlflow_run_evaluated_on_the_sweeps_schedule(project):
    edge_stage.main(["--variant", "vanilla"])

    (parent,) = mlflow.search_runs(experiment_names=["bn-mnist"], output_format="list")
    children = mlflow.search_runs(experiment_names=["bn-mnist-edge"], output_format="list")
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parent.info.run_id}
    assert parent.data.tags["stage"] == "edge" and parent.info.status == "FINISHED"
    assert parent.data.params["edge.rates_between"] == str(RATES_BETWEEN)
    settings = sorted((int(r.data.tags["seed"]), float(r.data.tags["lr"])) for r in children)
    assert [seed for seed, _ in settings] == [seed for _, seed in sorted(EXPECTED, key=lambda m: (m[1], m[0]))]
    assert [lr for _, lr in settings] == pytest.approx([lr for lr, _ in sorted(EXPECTED, key=lambda m: (m[1], m[0]))])
    for child in children:
        assert child.data.tags["variant"] == "vanilla" and math.isfinite(child.data.metrics["final_test_accuracy"])
        history = mlflow.MlflowClient().get_metric_history(child.info.run_id, "test_accuracy")
        assert [point.step for point in history] == list(eval_schedule(STEPS, EVAL_EVERY, 2))


def test_the_refined_members_train_as_the_sweeps_do(project, monkeypatch):
    seen = {}
    real_trainer = runner.Trainer

    def recording_trainer(model, data, schedule):
        trainer = real_trainer(model, data, schedule)
        seen["weights"], seen["schedule"] = model.hidden[0].weight.detach().clone(), schedule
        seen["batches"] = [trainer._order.next().clone() for _ in range(3)]
        return real_trainer(model, data, schedule)  # a fresh order for the real run

    monkeypatch.setattr(runner, "Trainer", recording_trainer)
    edge_stage.main(["--variant", "bn"])

    params, members = load_params(), _refined()
    assert seen["schedule"] == schedule_for(params.sweep_run, members.lr, data_seeds=members.data_seeds)
    assert seen["schedule"].learning_rates == pytest.approx([lr for lr, _ in EXPECTED])
    # the sweep's member of the same seed and init std starts from the same draws and sees the same batches
    monkeypatch.setattr(runner, "Trainer", real_trainer)
    sweep, _ = runner.build_trainer(params.sweep_run, "bn", MemberTable.grid(params.sweep))
    first_of_seed = {0: 0, 1: len(RATES) * len(INIT_STDS)}  # the sweep's first member of each seed, at init std 0.1
    for k, (_, seed) in enumerate(EXPECTED):
        assert torch.equal(seen["weights"][k], sweep.model.hidden[0].weight[first_of_seed[seed]])
    sweep_batches = [sweep._order.next() for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(seen["batches"], sweep_batches, strict=True))


def _interrupted_after_the_first_checkpoint(monkeypatch, variant: str) -> None:
    """Run the stage, failing right after it saved its first checkpoint (as if killed then)."""
    real_save = checkpoint.Checkpoint.save

    def save_then_fail(self, payload):
        real_save(self, payload)
        raise RuntimeError("killed after a checkpoint")

    with monkeypatch.context() as patched:
        patched.setattr(checkpoint.Checkpoint, "save", save_then_fail)
        with pytest.raises(RuntimeError, match="killed after a checkpoint"):
            edge_stage.main(["--variant", variant])
    assert (paths.CHECKPOINTS / f"edge-{variant}.pt").exists()


def test_a_stage_interrupted_after_a_checkpoint_resumes_and_ends_as_an_uninterrupted_run(project, monkeypatch, capsys):
    edge_stage.main(["--variant", "vanilla"])  # uninterrupted: the reference
    uninterrupted = (project / "results" / "edge" / "vanilla" / "final.csv").read_text()
    for path in (project / "results" / "edge" / "vanilla").iterdir():
        path.unlink()

    _interrupted_after_the_first_checkpoint(monkeypatch, "vanilla")
    assert not (project / "results" / "edge" / "vanilla" / "final.csv").exists()
    capsys.readouterr()
    edge_stage.main(["--variant", "vanilla"])

    assert f"edge-vanilla: resumed from step {CHECKPOINT_EVERY}" in capsys.readouterr().err
    assert (project / "results" / "edge" / "vanilla" / "final.csv").read_text() == uninterrupted
    assert not (project / paths.CHECKPOINTS / "edge-vanilla.pt").exists()


def test_a_checkpoint_made_for_other_members_is_refused_with_the_reason(project, monkeypatch, capsys):
    _interrupted_after_the_first_checkpoint(monkeypatch, "bn")
    # the sweep's results changed since: seed 1 now trains at rate 1 too, so its bracket moves up a decade
    write_sweep_final("bn", SWEPT, set())
    capsys.readouterr()
    edge_stage.main(["--variant", "bn"])

    err = capsys.readouterr().err
    assert "checkpoint .checkpoints/edge-bn.pt ignored: it was made under other settings (members.lr: " in err
    assert "resumed" not in err
    lrs = [float(row["lr"]) for row in _rows(project / "results" / "edge" / "bn" / "final.csv")]
    assert lrs == pytest.approx([THIRD, THIRD**2, THIRD, THIRD**2])  # both seeds between 1 and 10


def test_without_the_sweeps_results_the_stage_says_which_file_is_missing_and_writes_nothing(project, capsys):
    (project / "results" / "sweep" / "bn" / "final.csv").unlink()
    with pytest.raises(SystemExit) as exit_status:
        report_user_errors(lambda: edge_stage.main(["--variant", "bn"]))
    assert exit_status.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: results/sweep/bn/final.csv: no such file") and err.count("\n") == 1
    assert not (project / "results" / "edge").exists()
