"""Stage train@variant: train every seed of one variant at its tuned learning rate, tracked in MLflow.

A killed run resumes from its last checkpoint (.checkpoints/train-<variant>.pt) when it is started again.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from src import results, tracking
from src.atomic import atomic_directory, write_json
from src.checkpoint import CHECKPOINT_DIR, Checkpoint, stage_identity
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, Params, load_params
from src.data import PROCESSED_DIR, load_split, read_split_arrays
from src.engine import Trainer, TrainingData, TrainResult, resolve_device
from src.models import build_model
from src.resumable import StageRun, tracked_training
from src.schedule import schedule_for

MODELS = Path("models")
OUT = Path("results/train")


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()
    device = resolve_device(params.train.device)
    learning_rate = results.read_tuned_learning_rate(Path(f"results/tune/{variant}/best.json"), variant)
    seeds = params.train.seed_list

    train = load_split(PROCESSED_DIR, "train", device, params.data.binarize)
    test = load_split(PROCESSED_DIR, "test", device, params.data.binarize)
    model = build_model(params.model, variant, seeds, device)
    schedule = schedule_for(params, "train", [learning_rate] * len(seeds), data_seeds=seeds)
    probe = test.images[: params.train.percentile_examples]
    trainer = Trainer(model, TrainingData(train, test, probe, params.train.tracked_units), schedule)

    tracking.configure(params.tracking.experiment)
    stage = stage_run(params, variant, learning_rate, device)
    with tracked_training(trainer, stage, histories=partial(results.metric_histories, with_percentiles=True)) as run:
        write_outputs(params, variant, learning_rate, trainer.model, run.result, device)
        images, labels = read_split_arrays(PROCESSED_DIR, "train")
        dataset = tracking.numpy_dataset(images, labels, name="mnist-train", source=PROCESSED_DIR / "train.npz")
        tracking.log_dataset(dataset, context="training")
        for member_run, seed in zip(run.member_runs.run_ids, seeds, strict=True):
            tracking.log_artifact(member_run, MODELS / variant / f"seed_{seed}.pt")
        run.finish()
    print(
        f"train@{variant}: {len(seeds)} seeds × {params.train.steps:,} steps at lr={learning_rate:g} "
        f"in {run.result.wall_time_s:.1f} s on {device}{run.resumed_text}; {run.checkpoint_text}"
    )


def stage_run(params: Params, variant: str, learning_rate: float, device: torch.device) -> StageRun:
    """The stage's MLflow runs (one per seed) and its checkpoint, identified by everything that decides them."""
    device_tag = {"device": str(device)}
    identity = stage_identity(
        "train", variant, device, __file__,
        params={"data": {"binarize": params.data.binarize}, "model": params.model.model_dump(), "lr": learning_rate,
                "train": params.train.model_dump(exclude={"checkpoint_every", "device"}),
                "tracking": params.tracking.model_dump()},
        splits=("train", "test"),
    )  # fmt: skip
    return StageRun(
        name=f"train-{variant}",
        tags={"stage": "train", "variant": variant, **device_tag, "lr_source": "tune"},
        params=params.model_dump(),
        members=[
            tracking.Member(
                name=f"train-{variant}-seed{seed}",
                tags={"stage": "train", "variant": variant, "seed": str(seed), **device_tag},
                params={**params.model_dump(), "lr": learning_rate, "seed": seed},
            )
            for seed in params.train.seed_list
        ],
        checkpoint=Checkpoint(CHECKPOINT_DIR / f"train-{variant}.pt", identity),
        checkpoint_every=params.train.checkpoint_every,
    )


def write_outputs(
    params: Params, variant: str, learning_rate: float, model, result: TrainResult, device: torch.device
) -> None:
    """models/<variant>/seed_<s>.pt (Algorithm 2's statistics), the histories and summary.json."""
    seeds = params.train.seed_list
    with atomic_directory(MODELS / variant) as staging:
        for member, seed in enumerate(seeds):
            torch.save(model.member_state_dict(member), staging / f"seed_{seed}.pt")
    labels = [{"seed": seed} for seed in seeds]
    results.write_history(OUT / variant / "history.csv", result, labels)
    results.write_sigmoid_inputs(OUT / variant / "sigmoid_inputs.csv", result, labels)
    final = torch.tensor(result.final.accuracy, dtype=torch.float64)
    write_json(
        OUT / variant / "summary.json",
        {
            "variant": variant,
            "lr": learning_rate,
            "lr_source": "tune",
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
