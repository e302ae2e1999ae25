"""Stage train@variant: train every seed of one variant at its tuned learning rate, tracked in MLflow.

A killed run resumes from its last checkpoint (.checkpoints/train-<variant>.pt) when it is started again.
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import torch

from src import results, tracking
from src.atomic import atomic_directory, write_json
from src.checkpoint import CHECKPOINT_DIR, Checkpoint
from src.cli import OneLineParser, UsageError, report_user_errors
from src.config import VARIANTS, Params, load_params
from src.data import PROCESSED_DIR, load_split, read_split_arrays
from src.engine import Trainer, TrainingData, TrainResult, resolve_device, schedule_for
from src.models import build_model
from src.provenance import code_sha256, data_sha256, file_sha256
from src.resumable import StageRun, tracked_training


def tuned_learning_rate(params: Params, variant: str, best_file: Path) -> tuple[float, str]:
    """The tuning stage's best learning rate when it has run, else params.yaml's fallback."""
    if not best_file.exists():
        return getattr(params.train.fallback_lr, variant), "params"
    rerun = f"re-run `dvc repro tune@{variant}` to rewrite it"
    try:
        best = json.loads(best_file.read_text())
    except ValueError as error:
        raise UsageError(f"{best_file}: not valid JSON ({error}); {rerun}") from None
    learning_rate = best.get("best_lr") if isinstance(best, dict) else None
    is_number = isinstance(learning_rate, int | float) and not isinstance(learning_rate, bool)
    if not (is_number and 0 < learning_rate < math.inf):
        raise UsageError(f"{best_file}: best_lr must be a positive number, got {learning_rate!r}; {rerun}")
    return float(learning_rate), "tune"


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()
    try:
        device = resolve_device(params.train.device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    learning_rate, lr_source = tuned_learning_rate(params, variant, Path(f"results/tune/{variant}/best.json"))
    seeds = params.train.seed_list

    train = load_split(PROCESSED_DIR, "train", device, params.data.binarize)
    test = load_split(PROCESSED_DIR, "test", device, params.data.binarize)
    model = build_model(params.model, variant, seeds, device)
    schedule = schedule_for(params, "train", [learning_rate] * len(seeds), data_seeds=seeds)
    probe = test.images[: params.train.percentile_examples]
    trainer = Trainer(model, TrainingData(train, test, probe, params.train.tracked_units), schedule)

    stage = StageRun(
        name=f"train-{variant}",
        tags={"stage": "train", "variant": variant, "device": str(device), "lr_source": lr_source},
        params=params.model_dump(),
        members=[
            tracking.Member(
                name=f"train-{variant}-seed{seed}",
                tags={"stage": "train", "variant": variant, "seed": str(seed), "device": str(device)},
                params={**params.model_dump(), "lr": learning_rate, "seed": seed},
            )
            for seed in seeds
        ],
        checkpoint=Checkpoint(
            CHECKPOINT_DIR / f"train-{variant}.pt", checkpoint_identity(params, variant, learning_rate, device)
        ),
        checkpoint_every=params.train.checkpoint_every,
    )
    tracking.configure(params.tracking.experiment)
    with tracked_training(
        trainer, stage, histories=partial(results.metric_histories, with_percentiles=True)
    ) as outcome:
        result = outcome.result
        write_outputs(variant, seeds, trainer.model, result, learning_rate, lr_source, params, device)
        images, labels = read_split_arrays(PROCESSED_DIR, "train")
        dataset = tracking.numpy_dataset(images, labels, name="mnist-train", source=PROCESSED_DIR / "train.npz")
        tracking.log_dataset(dataset, context="training")
        for member_run, seed in zip(outcome.member_runs.run_ids, seeds, strict=True):
            tracking.log_artifact(member_run, Path("models") / variant / f"seed_{seed}.pt")
        outcome.member_runs.finish(
            tags=[{"diverged": str(diverged).lower()} for diverged in result.final.diverged],
            metrics=[{"final_test_accuracy": accuracy} for accuracy in result.final.accuracy],
        )
        timing = {"train_wall_time_s": result.wall_time_s, "checkpoint_overhead": outcome.checkpoint_overhead}
        tracking.log_results(timing, artifacts=[])
    resumed = f", resumed from step {outcome.resumed_from:,}" if outcome.resumed_from else ""
    print(
        f"train@{variant}: {len(seeds)} seeds × {params.train.steps:,} steps at lr={learning_rate:g} ({lr_source}) "
        f"in {result.wall_time_s:.1f} s on {device}{resumed}; {outcome.checkpoints} checkpoints took "
        f"{outcome.checkpoint_s:.2f} s ({100 * outcome.checkpoint_overhead:.2f} % of training)"
    )


def checkpoint_identity(params: Params, variant: str, learning_rate: float, device: torch.device) -> dict:
    """Everything that decides this stage's outputs: a checkpoint made under anything else is not resumed."""
    return {
        "stage": "train",
        "variant": variant,
        "lr": learning_rate,
        "device": str(device),
        "params": {
            "data": {"binarize": params.data.binarize},
            "model": params.model.model_dump(),
            "train": params.train.model_dump(exclude={"checkpoint_every", "device", "fallback_lr"}),
            "tracking": params.tracking.model_dump(),
        },
        "data_sha256": data_sha256(PROCESSED_DIR, ("train", "test")),
        "code_sha256": {**code_sha256(), __name__: file_sha256(Path(__file__))},
    }


def write_outputs(variant, seeds, model, result: TrainResult, learning_rate, lr_source, params: Params, device) -> None:
    with atomic_directory(Path("models") / variant) as staging:
        for member, seed in enumerate(seeds):
            torch.save(model.member_state_dict(member), staging / f"seed_{seed}.pt")
    out = Path("results/train") / variant
    labels = [{"seed": seed} for seed in seeds]
    results.write_history(out / "history.csv", result, labels)
    results.write_sigmoid_inputs(out / "sigmoid_inputs.csv", result, labels)
    final = torch.tensor(result.final.accuracy, dtype=torch.float64)
    write_json(
        out / "summary.json",
        {
            "variant": variant,
            "lr": learning_rate,
            "lr_source": lr_source,
            "seeds": seeds,
            "steps": params.train.steps,
            "batch_size": params.train.batch_size,
            # BN: the trained network under Algorithm 2's population statistics (history.csv: moving averages)
            "final_test_accuracy": result.final.accuracy,
            "final_test_accuracy_mean": final.mean().item(),
            "final_test_accuracy_std": final.std().item() if len(final) > 1 else 0.0,
            "n_diverged": sum(result.final.diverged),
            "device": str(device),
        },
    )


if __name__ == "__main__":
    report_user_errors(main)
