"""The SLURM job array of docs/many-machines.md, as written there, submitted with sbatch to a real one-node cluster
(slurmctld and slurmd on 127.0.0.1: conftest.py's `slurm_conf`): its workers take units of a sweep queued in
PostgreSQL beside the stage, and the stage's outputs are byte for byte those of one process training every unit.

The sweep is tests/small_sweep.py's: 6 units of a tiny net, as tests/sweep/test_work.py shares them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.processes import REPO_ROOT, stage_env, start
from tests.small_sweep import copy_mlflow_store, outputs, write_project

pytestmark = pytest.mark.timeout(300)

WORKERS = 2  # the array's tasks: two at a time on a node of two CPUs
WORKER_SAID = re.compile(r"sweep worker [^:]+:(\d+): trained (\d+) unit\(s\)")


def job_array_script() -> str:
    """The job-array script of docs/many-machines.md, as users copy it."""
    text = (REPO_ROOT / "docs" / "many-machines.md").read_text()
    scripts = [block for block in re.findall(r"```bash\n(.*?)```", text, re.S) if "#SBATCH" in block]
    assert len(scripts) == 1, f"docs/many-machines.md holds {len(scripts)} SLURM scripts, expected one"
    return scripts[0]


def _running(job: str, tasks: int, env: dict[str, str]) -> None:
    """Wait until `tasks` tasks of the array `job` run."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listed = subprocess.run(["squeue", "-h", "-j", job, "-t", "RUNNING", "-o", "%i"], env=env, capture_output=True)
        if len(listed.stdout.splitlines()) == tasks:
            return
        time.sleep(0.2)
    raise AssertionError(f"the array's {tasks} tasks did not start within 60 s")


def test_the_documented_job_array_shares_a_postgresql_sweep_and_writes_what_one_process_writes(
    one_process_sweep, slurm_conf, new_postgres_database, tmp_path, _migrated_mlflow_store
):
    storage = new_postgres_database(f"slurm_{tmp_path.name[-24:].lower()}")
    project = write_project(tmp_path / "project", storage)
    (project / "sweep.sbatch").write_text(job_array_script())
    store = copy_mlflow_store(tmp_path, _migrated_mlflow_store)
    # as a user submits it: from the checkout, the MLflow store exported, `python` the project's
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = stage_env(SLURM_CONF=str(slurm_conf), MLFLOW_TRACKING_URI=store, PATH=path)
    # the array sized to one node on sbatch's command line, which overrides the script's #SBATCH line
    submit = ["sbatch", "--wait", "--parsable", f"--array=0-{WORKERS - 1}", "sweep.sbatch", "--variant", "bn"]
    array = subprocess.Popen(submit, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = array.stdout.readline().strip().split(";")[0]
    assert job, array.communicate()[1]
    stage_out = stage_err = ""
    try:
        _running(job, WORKERS, env)  # the stage starts once its workers are on the node, so they take units
        stage = start("pipeline.sweep", "--variant", "bn", cwd=project, MLFLOW_TRACKING_URI=store)
        stage_out, stage_err = stage.communicate(timeout=240)
    finally:
        if array.poll() is None and "trained here" not in stage_out:  # else its workers wait --wait seconds
            subprocess.run(["scancel", job], env=env)
    assert stage.returncode == 0, stage_err
    _, sbatch_err = array.communicate(timeout=240)
    said = {path.name: path.read_text() for path in sorted(project.glob(f"slurm-{job}_*.out"))}
    assert array.returncode == 0, f"a worker failed: {sbatch_err} {said}"

    assert outputs(project) == one_process_sweep
    workers = {int(pid): int(units) for text in said.values() for pid, units in WORKER_SAID.findall(text)}
    assert len(workers) == WORKERS, f"not every task's worker ended well: {said}"
    assert sum(workers.values()) > 0, f"the array's workers took no unit: {said}"
    (name,) = optuna.get_all_study_names(storage)
    done = optuna.load_study(study_name=name, storage=storage).get_trials(states=(TrialState.COMPLETE,))
    here = int(re.search(r"(\d+) trained here", stage_out).group(1))
    trained_by = sorted([stage.pid] * here + [pid for pid, units in workers.items() for _ in range(units)])
    assert sorted(trial.user_attrs["pid"] for trial in done) == trained_by
