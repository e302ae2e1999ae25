"""Stage train@variant: train every seed of one variant at its tuned learning rate, tracked in MLflow.

Each seed is also logged as a standard PyTorch model on its MLflow run; the seed with the best validation accuracy
is registered as `<experiment>-<variant>` (bn-mnist-bn) with the alias `champion`.
A killed run resumes from its last checkpoint (.checkpoints/train-<variant>.pt) when it is started again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from src import registry, results, tracking
from src.atomic import atomic_directory, write_json
from src.checkpoint import CHECKPOINT_DIR, Checkpoint, stage_identity
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, Params, load_params
from src.data import PROCESSED_DIR, SPLITS, load_split, read_split_arrays
from src.device import resolve_device
from src.engine import Trainer, TrainingData, TrainResult
from src.export import plain_network
from src.models import MLP, build_model, score_members
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

    train, val, test = (load_split(PROCESSED_DIR, name, device, params.data.binarize) for name in SPLITS)
    model = build_model(params.model, variant, seeds, device)
    schedule = schedule_for(params, "train", [learning_rate] * len(seeds), data_seeds=seeds)
    probe = test.images[: params.train.percentile_examples]
    trainer = Trainer(model, TrainingData(train, test, probe, params.train.tracked_units), schedule)

    tracking.configure(params.tracking.experiment)
    stage = stage_run(params, variant, learning_rate, device)
    with tracked_training(trainer, stage, histories=partial(results.metric_histories, with_percentiles=True)) as run:
        validation_accuracy = score_members(trainer.model, val)[0].tolist()
        trained = Trained(variant, seeds, learning_rate, device, trainer.model, run.result, validation_accuracy)
        write_outputs(params, trained)
        images, labels = read_split_arrays(PROCESSED_DIR, "train")
        dataset = tracking.numpy_dataset(images, labels, name="mnist-train", source=PROCESSED_DIR / "train.npz")
        tracking.log_dataset(dataset, context="training")
        for member_run, seed in zip(run.member_runs.run_ids, seeds, strict=True):
            tracking.log_artifact(member_run, MODELS / variant / f"seed_{seed}.pt")
        champion = publish_models(params, trained, run.member_runs.run_ids, test.images)
        run.finish([{"final_val_accuracy": accuracy} for accuracy in trained.validation_accuracy])
    print(
        f"train@{variant}: {len(seeds)} seeds × {params.train.steps:,} steps at lr={learning_rate:g} "
        f"in {run.result.wall_time_s:.1f} s on {device}{run.resumed_text}; {run.checkpoint_text}\n"
        f"train@{variant}: registered seed {seeds[trained.champion]} (best validation accuracy "
        f"{max(trained.validation_accuracy):.4f}) as models:/{champion.name}@{registry.CHAMPION} "
        f"(version {champion.version})"
    )


@dataclass(frozen=True)
class Trained:
    """What the stage trained: one variant's members after training, and each one's validation accuracy."""

    variant: str
    seeds: list[int]
    learning_rate: float
    device: torch.device
    model: MLP
    result: TrainResult
    validation_accuracy: list[float]

    @property
    def champion(self) -> int:
        """The member with the best validation accuracy (the first of equals): the test split never chooses."""
        return max(range(len(self.seeds)), key=lambda member: self.validation_accuracy[member])


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


def write_outputs(params: Params, trained: Trained) -> None:
    """models/<variant>/seed_<s>.pt (Algorithm 2's statistics), the histories and summary.json."""
    variant, seeds, result = trained.variant, trained.seeds, trained.result
    with atomic_directory(MODELS / variant) as staging:
        for member, seed in enumerate(seeds):
            torch.save(trained.model.member_state_dict(member), staging / f"seed_{seed}.pt")
    labels = [{"seed": seed} for seed in seeds]
    results.write_history(OUT / variant / "history.csv", result, labels)
    results.write_sigmoid_inputs(OUT / variant / "sigmoid_inputs.csv", result, labels)
    final = torch.tensor(result.final.accuracy, dtype=torch.float64)
    write_json(
        OUT / variant / "summary.json",
        {
            "variant": variant,
            "lr": trained.learning_rate,
            "lr_source": "tune",
            "seeds": seeds,
            "steps": params.train.steps,
            "batch_size": params.train.batch_size,
            # BN: the trained network under Algorithm 2's population statistics (history.csv: moving averages)
            "final_test_accuracy": result.final.accuracy,
            "final_test_accuracy_mean": final.mean().item(),
            "final_test_accuracy_std": final.std().item() if len(final) > 1 else 0.0,
            "final_val_accuracy": trained.validation_accuracy,
            "champion_seed": seeds[trained.champion],
            "n_diverged": sum(result.final.diverged),
            "device": str(trained.device),
        },
    )


def publish_models(params: Params, trained: Trained, member_runs: list[str], example_images: torch.Tensor):
    """Each seed as a standard PyTorch model on its MLflow run; the champion registered. Returns its version."""
    networks = [plain_network(trained.model, member) for member in range(len(trained.seeds))]
    logged = registry.log_networks(member_runs, networks, example_images.cpu().numpy())
    champion = trained.champion
    tags = {
        "seed": str(trained.seeds[champion]),
        "validation_accuracy": f"{trained.validation_accuracy[champion]:.4f}",
        "device": str(trained.device),
    }
    return registry.register_champion(logged[champion], f"{params.tracking.experiment}-{trained.variant}", tags)


if __name__ == "__main__":
    report_user_errors(main)
