"""train@ logs every seed as an MLflow model and registers the best as a new version, tagged with its DVC experiment
and params; the alias champion moves only to a version that beats it, and `mlflow models predict` serves it without
this project's code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import numpy as np
import pytest
import torch

from pipeline import train as train_stage
from src.config import load_params
from src.data.splits import load_split
from src.engine.network import load_member
from src.tracking import registry, runs
from src.tracking.store import configure
from tests import synthetic

SEEDS = 3
CHAMPION_URI = f"models:/bn-mnist-bn@{registry.CHAMPION}"


@pytest.fixture
def trained(tmp_path, repo_root, monkeypatch, mlflow_store, one_torch_thread):
    """train@bn run once on synthetic data in tmp_path; returns (project, summary)."""
    synthetic.write_train_project(tmp_path, repo_root, seeds=SEEDS, population_batches=3)
    monkeypatch.chdir(tmp_path)
    train_stage.main(["--variant", "bn"])
    return tmp_path, json.loads((tmp_path / "results" / "train" / "bn" / "summary.json").read_text())


def test_the_seed_with_the_best_validation_accuracy_is_the_registered_champion(trained):
    _, summary = trained
    validation = summary["final_val_accuracy"]
    assert len(validation) == SEEDS and all(0.0 <= accuracy <= 1.0 for accuracy in validation)
    assert len(set(validation)) > 1, "the seeds must differ for the choice to mean anything"
    assert summary["champion_seed"] == summary["seeds"][int(np.argmax(validation))]

    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("bn-mnist-bn", registry.CHAMPION)
    assert champion.tags["seed"] == str(summary["champion_seed"])
    assert float(champion.tags[registry.VALIDATION_ACCURACY]) == max(validation)
    # its DVC experiment (none: the workspace) and the params of train@, as dvc.yaml lists them
    assert champion.tags[runs.EXPERIMENT_NAME_TAG] == "workspace"
    assert champion.tags["train.steps"] == "8" and champion.tags["model.hidden_units"] == "100"
    run = client.get_run(champion.run_id)
    assert run.data.tags["seed"] == str(summary["champion_seed"]) and run.data.tags["stage"] == "train"
    assert run.data.metrics["final_val_accuracy"] == pytest.approx(max(validation))


def test_every_seed_run_has_a_model_with_a_signature_and_an_input_example(trained):
    runs = mlflow.search_runs(experiment_names=["bn-mnist"], filter_string="tags.stage = 'train'", output_format="list")
    seed_runs = [run for run in runs if "seed" in run.data.tags]
    assert len(seed_runs) == SEEDS
    for run in seed_runs:
        (output,) = run.outputs.model_outputs
        info = mlflow.models.get_model_info(f"models:/{output.model_id}")
        assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 784)
        assert info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 10)
        assert info.saved_input_example_info is not None
        assert info.flavors["pytorch"]["pytorch_version"] == torch.__version__


def test_the_champion_loads_in_plain_torch_with_algorithm_2_statistics_and_predicts_as_its_member(trained):
    project, summary = trained
    # MLflow's default PyTorch format: a torch.export program (no pickle), loaded as a GraphModule
    network = mlflow.pytorch.load_model(CHAMPION_URI, map_location="cpu")
    params = load_params(project / "params.yaml")
    member = load_member(project / "models" / "bn" / f"seed_{summary['champion_seed']}.pt", params.model, "bn", "cpu")
    state = network.state_dict()
    for layer, position in enumerate((1, 4, 7)):  # Linear, BatchNorm1d, Sigmoid per hidden layer
        torch.testing.assert_close(state[f"{position}.running_mean"], member.norms[layer].running_mean[0])
        torch.testing.assert_close(state[f"{position}.running_var"], member.norms[layer].running_var[0])
    test = load_split(project / "data" / "processed", "test", torch.device("cpu"), params.data.binarize)
    with torch.no_grad():
        torch.testing.assert_close(network(test.images), member(test.images)[0], rtol=1e-5, atol=1e-5)


def test_a_rerun_no_better_than_the_champion_is_the_challenger_and_the_champion_stays(trained, capsys):
    capsys.readouterr()
    train_stage.main(["--variant", "bn"])  # the same params and data: the same validation accuracy
    client = mlflow.MlflowClient()
    versions = client.search_model_versions("name = 'bn-mnist-bn'")
    assert sorted(int(version.version) for version in versions) == [1, 2]
    aliases = client.get_registered_model("bn-mnist-bn").aliases
    assert {alias: int(version) for alias, version in aliases.items()} == {"champion": 1, "challenger": 2}
    assert "as models:/bn-mnist-bn version 2, @challenger: @champion stays version 1" in capsys.readouterr().out


def _register(accuracy: float, experiment: str) -> registry.Registration:
    model = mlflow.create_external_model(name="model")  # a model without files: the rule reads only the registry
    return registry.register(model.model_uri, "bn-mnist-bn", accuracy, {runs.EXPERIMENT_NAME_TAG: experiment})


def test_the_champion_moves_only_to_a_version_whose_validation_accuracy_beats_it(mlflow_store):
    configure("bn-mnist")
    first, worse, equal, better = (
        _register(accuracy, name)
        for accuracy, name in [(0.97, "first"), (0.95, "worse"), (0.97, "equal"), (0.98, "better")]
    )

    assert [first.alias, worse.alias, equal.alias, better.alias] == ["champion", "challenger", "challenger", "champion"]
    assert (worse.champion, worse.champion_accuracy) == ("1", 0.97) and equal.champion == "1"
    assert (better.version, better.champion) == ("4", "4")
    client = mlflow.MlflowClient()
    aliases = client.get_registered_model("bn-mnist-bn").aliases
    assert {alias: int(version) for alias, version in aliases.items()} == {"champion": 4, "challenger": 3}
    worse_version = client.get_model_version("bn-mnist-bn", "2")
    assert worse_version.tags == {runs.EXPERIMENT_NAME_TAG: "worse", registry.VALIDATION_ACCURACY: "0.95"}


def test_mlflow_models_predict_serves_the_champion_on_a_json_of_test_images(trained, tmp_path):
    project, _ = trained
    params = load_params(project / "params.yaml")
    test = load_split(project / "data" / "processed", "test", torch.device("cpu"), params.data.binarize)
    images = test.images[:5].numpy()
    (tmp_path / "input.json").write_text(json.dumps({"inputs": images.tolist()}))
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "predict",
            "-m",
            "models:/bn-mnist-bn@champion",
            "--env-manager",
            "local",
            "-i",
            "input.json",
            "-t",
            "json",
            "-o",
            "predictions.json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    predictions = np.array(json.loads((tmp_path / "predictions.json").read_text())["predictions"])
    assert predictions.shape == (5, 10)
    with torch.no_grad():
        champion = mlflow.pytorch.load_model(CHAMPION_URI, map_location="cpu")
        expected = champion(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(predictions, expected, rtol=1e-5, atol=1e-5)
