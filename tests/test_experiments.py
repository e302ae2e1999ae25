"""The experiment loop as a DVC user runs it, end to end on a small config in a scratch copy of the project.

A baseline is reproduced and committed; then two experiments are queued and run side by side by
`dvc queue start -j 2`, each in a temporary copy of the project. Every run of both lands in the project's one MLflow
store, tagged with its experiment; the worse experiment leaves `@champion` where it was and the better one takes it;
and the declared DVC metrics stay few enough for `dvc exp show` to compare experiments in a wide terminal. Then the
results are shared as the README's "Sharing results" says, through a bare git repository and a local-directory DVC
remote standing in for the team's: a fresh clone pulls the baseline and finds every stage up to date, and pulls and
applies an experiment pushed from the first clone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from src import paths
from src.tracking import registry
from src.tracking import runs as tracking

# the loop (a baseline, then two experiments) takes 3.5 to 5 minutes on this project's shared 2-core machine
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# train.steps of the baseline and of the two experiments: far fewer steps validate clearly worse, far more better
STEPS = {"baseline": 300, "worse": 10, "better": 1500}
SEEDS = 2
VARIANTS = ("vanilla", "bn")
MAX_METRICS = 30  # about as many columns as `dvc exp show --only-changed` fits beside its own in a wide terminal


def small(raw: dict) -> None:
    """params.yaml cut to seconds per stage: a few trials, steps and seeds, a two-rate sweep at one init."""
    raw["model"]["population_batches"] = 10
    raw["train"].update(
        steps=STEPS["baseline"],
        seeds=SEEDS,
        eval_every=100,
        evals_per_decade=0,
        checkpoint_every=10_000,
        tracked_units=2,
        percentile_examples=100,
        device="cpu",
    )
    raw["tune"].update(
        trials=2,
        trials_per_batch=2,
        steps=50,
        eval_every=25,
        evals_per_decade=0,
        lr_min=0.1,
        lr_max=1.0,
        pruning_warmup_evals=0,
    )
    raw["sweep"].update(
        lr_min=0.1,
        lr_max=1.0,
        lrs_per_decade=1,
        init_stds=[0.1],
        seeds=SEEDS,
        steps=50,
        eval_every=25,
        evals_per_decade=0,
        checkpoint_every=10_000,
    )
    raw["edge"].update(rates_between=1, init_stds=[0.1], checkpoint_every=10_000)
    raw["evaluate"].update(resamples=999, figure1_lrs=[1.0])


def _git(project: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(command, cwd=project, check=True, capture_output=True, text=True).stdout.strip()


def _dvc(project: Path, env: dict[str, str], *args: str, timeout: float = 600) -> str:
    completed = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert completed.returncode == 0, f"dvc {' '.join(args)}:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    return completed.stdout


def scratch_project(root: Path, repo_root: Path) -> Path:
    """The project's files as they are now (committed or not, less what git ignores), committed in a new repository."""
    listed = _git(repo_root, "ls-files", "--cached", "--others", "--exclude-standard", "-z").split("\0")
    for name in filter(None, listed):
        if (repo_root / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo_root / name, root / name)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    small(raw)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    _git(root, "init", "--quiet")
    _git(root, "add", "--all")
    _git(root, "commit", "--quiet", "-m", "small params")
    return root


def _queue_done(project: Path, env: dict[str, str]) -> bool:
    lines = _dvc(project, env, "queue", "status").splitlines()
    return not any(status in line.split() for line in lines for status in ("Queued", "Running"))


@pytest.fixture(scope="module")
def loop(tmp_path_factory, repo_root, real_mnist) -> dict:
    """The loop run once: baseline reproduced and committed, then two experiments queued and run side by side."""
    project = scratch_project(tmp_path_factory.mktemp("experiments"), repo_root)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # the stages' `python` is this one
    outside = ("MLFLOW_TRACKING_URI", "DVC_ROOT", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "PYTHONPATH")
    env = {key: value for key, value in os.environ.items() if key not in outside}
    env.update(PATH=path, MNIST_MIRROR=str(real_mnist), OMP_NUM_THREADS="1")
    timings = {}
    # a local directory stands in for the team's DVC remote; its config is committed with the baseline
    _dvc(project, env, "remote", "add", "--default", "shared", str(tmp_path_factory.mktemp("dvc-remote")))

    started = time.monotonic()
    _dvc(project, env, "repro")
    _git(project, "add", "--all")
    _git(project, "commit", "--quiet", "-m", "baseline")
    timings["baseline"] = time.monotonic() - started

    started = time.monotonic()
    for name in ("worse", "better"):
        _dvc(project, env, "exp", "run", "--queue", "--name", name, "--set-param", f"train.steps={STEPS[name]}")
    _dvc(project, env, "queue", "start", "--jobs", "2")
    deadline = time.monotonic() + 600
    while not _queue_done(project, env):
        assert time.monotonic() < deadline, "the queued experiments did not finish within 10 minutes"
        time.sleep(2)
    timings["experiments"] = time.monotonic() - started
    failed = [line for line in _dvc(project, env, "queue", "status").splitlines() if "Failed" in line.split()]
    assert not failed, failed + [_dvc(project, env, "queue", "logs", line.split()[1]) for line in failed]
    print(f"baseline {timings['baseline']:.0f} s, two experiments side by side {timings['experiments']:.0f} s")
    mlflow.set_tracking_uri(f"sqlite:///{project / paths.MLFLOW_STORE}")
    return {"project": project, "env": env, "baseline": _git(project, "rev-parse", "HEAD")}


def _runs_of(experiment: str) -> list[mlflow.entities.Run]:
    return mlflow.search_runs(
        experiment_names=["bn-mnist"],
        filter_string=f"tags.{tracking.EXPERIMENT_NAME_TAG} = '{experiment}'",
        output_format="list",
    )


def test_every_run_of_both_experiments_is_in_the_projects_store_tagged_with_its_experiment(loop):
    shown = json.loads(_dvc(loop["project"], loop["env"], "exp", "show", "--json"))
    names = {exp["name"] for row in shown for branch in row.get("experiments") or [] for exp in branch["revs"]}
    assert {"worse", "better"} <= names, f"dvc exp show lists {names}"
    # train.steps changes train@ of both variants and evaluate: each stage's run, and a run per seed of train@
    expected = sorted(
        ["evaluate"] + [f"train-{v}" for v in VARIANTS] + [f"train-{v}-seed{s}" for v in VARIANTS for s in range(SEEDS)]
    )
    spans = []
    for experiment in ("worse", "better"):
        runs = _runs_of(experiment)
        assert sorted(run.info.run_name for run in runs) == expected, experiment
        assert {run.data.tags[tracking.EXPERIMENT_BASELINE_TAG] for run in runs} == {loop["baseline"]}
        assert {run.info.status for run in runs} == {"FINISHED"}
        spans.append((min(run.info.start_time for run in runs), max(run.info.end_time for run in runs)))
    (first_start, first_end), (second_start, second_end) = spans
    assert first_start < second_end and second_start < first_end, "the experiments did not write at the same time"
    assert not list((loop["project"] / ".dvc" / "tmp").rglob(str(paths.MLFLOW_STORE))), "a store in a temporary copy"


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_worse_experiment_leaves_the_champion_and_the_better_one_takes_it(loop, variant):
    client = mlflow.MlflowClient()
    name = f"bn-mnist-{variant}"
    found = client.search_model_versions(f"name = '{name}'")
    versions = {version.tags[tracking.EXPERIMENT_NAME_TAG]: str(version.version) for version in found}
    tags = {version.tags[tracking.EXPERIMENT_NAME_TAG]: version.tags for version in found}
    assert sorted(versions) == ["better", "workspace", "worse"]
    accuracy = {experiment: float(tags[experiment][registry.VALIDATION_ACCURACY]) for experiment in versions}
    assert accuracy["worse"] < accuracy["workspace"] < accuracy["better"], accuracy
    assert [tags[experiment]["train.steps"] for experiment in ("worse", "better")] == ["10", "1500"]
    aliases = {alias: str(version) for alias, version in client.get_registered_model(name).aliases.items()}
    # whichever of the two registered first: the worse never takes the champion, the better always does
    assert aliases == {registry.CHAMPION: versions["better"], registry.CHALLENGER: versions["worse"]}


def test_the_dvc_metrics_are_the_headline_few_enough_to_compare_experiments_side_by_side(loop):
    shown = json.loads(_dvc(loop["project"], loop["env"], "metrics", "show", "--json"))
    files = {path: content["data"] for revision in shown.values() for path, content in revision["data"].items()}
    assert list(files) == ["results/headline.json"]
    keys = list(tracking.flatten(files["results/headline.json"]))
    assert 0 < len(keys) <= MAX_METRICS, keys


@pytest.fixture(scope="module")
def other_clone(loop, tmp_path_factory) -> Path:
    """The baseline pushed to a bare git repository and the DVC remote, then cloned and pulled afresh."""
    project, env = loop["project"], loop["env"]
    origin = tmp_path_factory.mktemp("origin") / "bn-mnist.git"
    _git(origin.parent, "init", "--quiet", "--bare", str(origin))
    _git(project, "remote", "add", "origin", str(origin))
    _git(project, "push", "--quiet", "--set-upstream", "origin", "HEAD")  # a clone of origin would just `git push`
    _dvc(project, env, "push")
    clone = tmp_path_factory.mktemp("clone") / "bn-mnist"
    _git(origin.parent, "clone", "--quiet", str(origin), str(clone))
    _dvc(clone, env, "pull")
    return clone


def test_a_fresh_clone_pulls_the_results_and_finds_every_stage_up_to_date(loop, other_clone):
    assert _dvc(other_clone, loop["env"], "status").strip() == "Data and pipelines are up to date."
    reproduced = _dvc(other_clone, loop["env"], "repro")
    assert "Running stage" not in reproduced and "Data and pipelines are up to date." in reproduced, reproduced
    # MLflow's store is neither in git nor in DVC: the runs stay where they were made
    assert not (other_clone / paths.MLFLOW_STORE).exists()


def test_an_experiment_pushed_from_one_clone_is_pulled_and_applied_in_another(loop, other_clone):
    project, env = loop["project"], loop["env"]
    _dvc(project, env, "exp", "push", "origin", "better")
    _dvc(other_clone, env, "exp", "pull", "origin", "better")
    _dvc(other_clone, env, "exp", "apply", "better")

    assert yaml.safe_load((other_clone / "params.yaml").read_text())["train"]["steps"] == STEPS["better"]
    assert _dvc(other_clone, env, "status").strip() == "Data and pipelines are up to date.", "an output not pulled"
    (experiment,) = [line.split()[0] for line in _git(project, "show-ref").splitlines() if line.endswith("/better")]
    for result in ("results/headline.json", "results/metrics.json", "dvc.lock"):
        shown = subprocess.run(["git", "show", f"{experiment}:{result}"], cwd=project, capture_output=True, check=True)
        assert (other_clone / result).read_bytes() == shown.stdout, f"{result} is not the experiment's"
