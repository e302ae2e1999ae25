"""What a user sees in `mlflow ui` after a small pipeline run, rendered by a real MLflow server in a real headless
Chromium: every stage run on the first page of the main experiment, though the sweep made more member runs than a page
holds; the sweep's member runs in an experiment of their own, each linking to its stage run; a seed's model and the
registry's champion."""

from __future__ import annotations

import shutil
import sys

import mlflow
import pytest
import torch
import yaml

from pipeline import sweep as sweep_stage
from pipeline import train as train_stage
from pipeline import tune as tune_stage
from tests import synthetic
from tests.browser import rendered, serving

# 9 learning rates × 3 init stds × 4 seeds: more member runs than the 100 runs a page of `mlflow ui` loads
SWEEP = {"lr_min": 0.01, "lr_max": 100.0, "lrs_per_decade": 2, "init_stds": [0.01, 0.1, 1.0], "seeds": 4}
SWEEP_MEMBERS = 108
STAGE_RUNS = ["sweep-bn", "train-bn", "train-vanilla", "tune-bn"]


def _small(raw: dict) -> None:
    """A tuning study of two trials and a sweep of SWEEP_MEMBERS members, each a few steps."""
    few_steps = {"steps": 8, "eval_every": 4, "evals_per_decade": 0}
    raw["tune"].update(few_steps, trials=2, trials_per_batch=2, pruning_warmup_evals=0)
    raw["sweep"].update(few_steps, **SWEEP, checkpoint_every=1000)


@pytest.fixture(scope="module")
def served(tmp_path_factory, repo_root, _migrated_mlflow_store):
    """tune@bn, train@vanilla, train@bn and sweep@bn, in that order as `dvc repro` runs them, into a fresh store, and
    an `mlflow server` on 127.0.0.1 over it; yields its URL."""
    project = tmp_path_factory.mktemp("project")
    store = project / "mlflow.db"
    shutil.copyfile(_migrated_mlflow_store, store)
    synthetic.write_train_project(project, repo_root, seeds=2, population_batches=2)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    _small(raw)
    (project / "params.yaml").write_text(yaml.safe_dump(raw))
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
        patch.chdir(project)
        torch.set_num_threads(1)  # on a shared 2-core machine a second thread only spins
        try:
            tune_stage.main(["--variant", "bn"])
            for variant in ("vanilla", "bn"):
                train_stage.main(["--variant", variant])
            sweep_stage.main(["--variant", "bn"])
        finally:
            torch.set_num_threads(threads)
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store}"]
        command += ["--host", "127.0.0.1", "--port", "{port}", "--workers", "1"]
        with serving(command, "/health", log=project / "server.log") as url:
            yield url


def _experiment_id(name: str) -> str:
    return mlflow.MlflowClient().get_experiment_by_name(name).experiment_id


def _runs_page(url: str, experiment: str) -> str:
    return f"{url}/#/experiments/{_experiment_id(experiment)}?workflowType=machine_learning"


def test_the_main_experiments_first_page_shows_every_stage_run_though_the_sweep_made_more_runs_than_a_page(
    served, tmp_path
):
    page = rendered(_runs_page(served, "bn-mnist"), tmp_path)
    assert "Model training" in page and ">Runs<" in page
    missing = [name for name in STAGE_RUNS if f">{name}<" not in page]
    assert not missing, f"{missing} are not on the first page of bn-mnist"

    names = [run.info.run_name for run in mlflow.search_runs(experiment_names=["bn-mnist"], output_format="list")]
    seeds = [f"train-{variant}-seed{seed}" for variant in ("vanilla", "bn") for seed in (0, 1)]
    assert sorted(names) == sorted(STAGE_RUNS + seeds), "only the stage runs and train@'s seed runs"


def test_the_sweeps_member_runs_are_in_an_experiment_of_their_own_and_link_to_their_stage_run(served, tmp_path):
    members = mlflow.search_runs(experiment_names=["bn-mnist-sweep"], output_format="list")
    (parent,) = mlflow.search_runs(
        experiment_names=["bn-mnist"], filter_string="tags.stage = 'sweep'", output_format="list"
    )
    assert len(members) == SWEEP_MEMBERS
    assert {run.data.tags["mlflow.parentRunId"] for run in members} == {parent.info.run_id}
    trials = mlflow.search_runs(experiment_names=["bn-mnist-tune"], output_format="list")
    assert sorted(run.info.run_name.rsplit("-", 1)[1] for run in trials) == ["trial0", "trial1"]

    member = members[0]
    page = rendered(f"{served}/#/experiments/{member.info.experiment_id}/runs/{member.info.run_id}", tmp_path)
    assert member.info.run_name in page, "the member's run page does not show the run"
    link = f'<a href="#/experiments/{parent.info.experiment_id}/runs/{parent.info.run_id}">sweep-bn</a>'
    assert link in page, "the member's page does not link to its stage run in bn-mnist"


def test_a_seed_run_shows_its_model_and_the_registry_its_champion(served, tmp_path):
    (seed_run,) = mlflow.search_runs(
        experiment_names=["bn-mnist"], filter_string="tags.seed = '1' and tags.variant = 'bn'", output_format="list"
    )
    (logged,) = seed_run.outputs.model_outputs
    seed_page = rendered(
        f"{served}/#/experiments/{_experiment_id('bn-mnist')}/runs/{seed_run.info.run_id}", tmp_path / "a"
    )
    assert "train-bn-seed1" in seed_page, "the seed's run page does not show the run"
    assert "final_test_accuracy" in seed_page and "final_val_accuracy" in seed_page
    assert f'models/{logged.model_id}">model</a>' in seed_page, "the seed's logged model is not linked"

    registry_page = rendered(f"{served}/#/models/bn-mnist-bn", tmp_path / "b")
    assert '"#/models/bn-mnist-bn/versions/1">Version 1<' in registry_page
    assert "@&nbsp;champion" in registry_page, "the champion alias is not shown on the registered model"
