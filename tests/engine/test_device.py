"""The device: 'auto' picks the best one here, a named one must exist, and CUDA runs deterministically."""

from __future__ import annotations

import os

import pytest
import torch

from src.engine.device import resolve_device
from src.errors import StudyError


@pytest.fixture
def only_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_the_cpu_resolves_and_an_unavailable_device_is_refused_naming_the_usable_ones(only_the_cpu):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")
    unavailable = r"train.device: 'cuda' is not available on this machine \(usable here: auto, cpu\)"
    with pytest.raises(StudyError, match=unavailable):
        resolve_device("cuda")


def test_an_unavailable_device_names_the_setting_it_came_from(only_the_cpu):
    unavailable = r"^--device: 'mps' is not available on this machine \(usable here: auto, cpu\)$"
    with pytest.raises(StudyError, match=unavailable):
        resolve_device("mps", setting="--device")


@pytest.fixture
def recorded_determinism(monkeypatch) -> list:
    """torch.use_deterministic_algorithms recorded instead of switched, and CUBLAS_WORKSPACE_CONFIG unset."""
    calls = []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    return calls


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_prefers_cuda_then_mps_then_the_cpu(monkeypatch, recorded_determinism, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)


def test_on_cuda_pytorch_is_switched_to_deterministic_algorithms_and_elsewhere_left_alone(
    monkeypatch, recorded_determinism
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    resolve_device("cpu")
    assert recorded_determinism == [] and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert resolve_device("cuda") == torch.device("cuda")
    assert recorded_determinism == [((True,), {"warn_only": True})]
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # cuBLAS's deterministic workspace


def test_a_cublas_workspace_the_user_set_is_kept(monkeypatch, recorded_determinism):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    resolve_device("cuda")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
