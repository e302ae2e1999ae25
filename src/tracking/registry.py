"""MLflow models: each trained seed logged as a standard PyTorch model on its run, the best one registered.

Every train@ run registers a version; the alias `champion` moves to it only when its validation accuracy beats the
champion's, otherwise it is the `challenger` (MLflow's champion/challenger convention for aliases).
A logged model needs none of this project's code (src/tracking/export.py builds it from torch.nn modules only), so
`mlflow models predict -m models:/bn-mnist-bn@champion --env-manager local` serves it anywhere torch is installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mlflow
import numpy as np
import torch
from mlflow.models import ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from torch import nn

from src.stores import databases

CHAMPION = "champion"  # the alias of the registered version a user should pick: the best so far
CHALLENGER = "challenger"  # the latest version that did not beat it
VALIDATION_ACCURACY = "validation_accuracy"  # the model-version tag the champion is chosen by
EXAMPLE_IMAGES = 2  # how many images the logged input example holds


def requirements() -> list[str]:
    """What a logged model needs: torch of this minor release (a local build tag such as +cpu is not on PyPI)."""
    return [f"torch=={torch.__version__.split('+')[0]}"]


def signature(network: nn.Module, images: np.ndarray) -> ModelSignature:
    """Input: float32 images (N, 784); output: the ten logits (N, 10)."""
    with torch.no_grad():
        logits = network(torch.from_numpy(images))
    return infer_signature(images, logits.numpy())


def log_networks(run_ids: Sequence[str], networks: Sequence[nn.Module], images: np.ndarray) -> list[ModelInfo]:
    """Log networks[k] as the model of run run_ids[k], with its signature and an input example from `images`."""
    example = np.ascontiguousarray(images[:EXAMPLE_IMAGES], dtype=np.float32)
    shared_signature = signature(networks[0], example)  # every member has the same shapes
    infos = []
    for run_id, network in zip(run_ids, networks, strict=True):
        infos.append(
            mlflow.pytorch.log_model(
                network,
                name="model",
                run_id=run_id,
                signature=shared_signature,
                input_example=example,
                pip_requirements=requirements(),  # stated, so MLflow need not load the model to infer them
            )
        )
    return infos


@dataclass(frozen=True)
class Registration:
    """A new version of a registered model, the alias it took, and the champion after it."""

    name: str
    version: str
    alias: str  # CHAMPION or CHALLENGER
    champion: str  # the champion's version after this registration
    champion_accuracy: float


def register(model_uri: str, name: str, validation_accuracy: float, tags: Mapping[str, str]) -> Registration:
    """Register `model_uri` as a new version of `name`, tagged with `tags` and its validation accuracy.

    It becomes the `champion` only if its validation accuracy beats the current champion's strictly (or there is no
    champion yet), else the `challenger`: a worse or an equal run leaves the served model where it is.
    """
    client = mlflow.MlflowClient()
    # Two experiments finishing together would both compare against the same champion: one decision at a time (the
    # database's lock; a tracking server offers none)
    with databases.first_use(mlflow.get_registry_uri()):
        version = mlflow.register_model(model_uri, name, tags={**tags, VALIDATION_ACCURACY: str(validation_accuracy)})
        new = str(version.version)
        champion, champion_accuracy = _champion(client, name)
        alias = CHAMPION if validation_accuracy > champion_accuracy else CHALLENGER
        client.set_registered_model_alias(name, alias, new)
    if alias == CHAMPION:
        return Registration(name, new, alias, champion=new, champion_accuracy=validation_accuracy)
    return Registration(name, new, alias, champion=champion, champion_accuracy=champion_accuracy)


def _champion(client: mlflow.MlflowClient, name: str) -> tuple[str | None, float]:
    """The version of `name` with the alias champion and its validation accuracy; (None, -inf) when there is none.

    A champion registered without a validation accuracy cannot be compared, so any version beats it.
    """
    version = client.get_registered_model(name).aliases.get(CHAMPION)
    if version is None:
        return None, float("-inf")
    tags = client.get_model_version(name, str(version)).tags
    return str(version), float(tags.get(VALIDATION_ACCURACY, "-inf"))
