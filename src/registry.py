"""MLflow models: each trained seed logged as a standard PyTorch model on its run, the best one registered.

A logged model needs none of this project's code (src/export.py builds it from torch.nn modules only), so
`mlflow models predict -m models:/bn-mnist-bn@champion --env-manager local` serves it anywhere torch is installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import mlflow
import numpy as np
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.models import ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from torch import nn

CHAMPION = "champion"  # the alias of the registered version a user should pick
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


def register_champion(model: ModelInfo, name: str, tags: Mapping[str, str]) -> ModelVersion:
    """Register `model` as a new version of `name` and point the alias `champion` at it."""
    version = mlflow.register_model(model.model_uri, name, tags=dict(tags))
    mlflow.MlflowClient().set_registered_model_alias(name, CHAMPION, version.version)
    return version
