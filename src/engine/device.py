"""Which device the study runs on, and making it deterministic there."""

from __future__ import annotations

import os

import torch

from src.errors import StudyError


def resolve_device(name: str, setting: str = "train.device") -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; a named device must be available (`setting` names the knob).

    On CUDA, PyTorch is switched to its deterministic algorithms (cuBLAS included), so that the same seeds give the
    same numbers there too; an op without a deterministic kernel warns instead of failing.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(name, False):
        usable = ", ".join(["auto", *(device for device, ok in available.items() if ok)])
        raise StudyError(f"{setting}: '{name}' is not available on this machine (usable here: {usable})")
    if name == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts: before any GEMM
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.device(name)
