"""Stage sweep@variant: one variant over a fixed grid of learning rate × init std × seed, every setting shared.

Both variants run the same grid with the same seeds: the same data order and the same initial draws per seed, so
every BN − vanilla comparison is paired. A killed run resumes from its last checkpoint (.checkpoints/).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from src import results, tracking
from src.atomic import write_json
from src.checkpoint import CHECKPOINT_DIR, Checkpoint, stage_identity
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, Params, load_params
from src.data import PROCESSED_DIR, load_split
from src.device import resolve_device
from src.engine import Trainer, TrainingData
from src.models import build_model
from src.resumable import StageRun, tracked_training
from src.schedule import schedule_for

OUT = Path("results/sweep")


def grid(params: Params) -> list[dict]:
    """Every member's {lr, init_std, seed}, seed first: the members of one seed share its data order."""
    sweep = params.sweep
    return [
        {"lr": lr, "init_std": init_std, "seed": seed}
        for seed in sweep.seed_list
        for init_std in sweep.init_stds
        for lr in sweep.learning_rates
    ]


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()
    device = resolve_device(params.train.device)
    members = grid(params)

    train = load_split(PROCESSED_DIR, "train", device, params.data.binarize)
    test = load_split(PROCESSED_DIR, "test", device, params.data.binarize)
    seeds, init_stds = [m["seed"] for m in members], [m["init_std"] for m in members]
    model = build_model(params.model, variant, seeds, device, init_stds=init_stds)
    schedule = schedule_for(params, "sweep", [m["lr"] for m in members], data_seeds=params.sweep.seed_list)
    probe = test.images[: params.train.percentile_examples]
    trainer = Trainer(model, TrainingData(train, test, probe, params.train.tracked_units), schedule)

    tracking.configure(params.tracking.experiment)
    stage = stage_run(params, variant, members, device)
    with tracked_training(trainer, stage, histories=partial(results.metric_histories, with_percentiles=False)) as run:
        out = OUT / variant
        results.write_history(out / "history.csv", run.result, members)
        results.write_sigmoid_inputs(out / "sigmoid_inputs.csv", run.result, members)
        results.write_final(out / "final.csv", run.result.final, members)
        summary = {"variant": variant, "members": len(members), "steps": params.sweep.steps, "device": str(device)}
        write_json(out / "summary.json", summary)
        run.finish()
    print(
        f"sweep@{variant}: {len(members)} members × {params.sweep.steps:,} steps in {run.result.wall_time_s:.1f} s "
        f"on {device}{run.resumed_text}; {run.checkpoint_text}"
    )


def stage_run(params: Params, variant: str, members: list[dict], device: torch.device) -> StageRun:
    """The stage's MLflow runs (one per grid member) and its checkpoint, identified by everything that decides them."""
    identity = stage_identity(
        "sweep", variant, device, __file__,
        params={"data": {"binarize": params.data.binarize}, "model": params.model.model_dump(),
                "sweep": params.sweep.model_dump(exclude={"checkpoint_every"}),
                "train": params.train.model_dump(include={"batch_size", "momentum", "tracked_units",
                                                          "percentile_examples"}),
                "tracking": params.tracking.model_dump()},
        splits=("train", "test"),
    )  # fmt: skip
    tags = {"stage": "sweep", "variant": variant, "device": str(device)}
    return StageRun(
        name=f"sweep-{variant}",
        tags=tags,
        params={
            "model": params.model.model_dump(),
            "sweep": params.sweep.model_dump(),
            "train": params.train.model_dump(),
        },
        members=[
            tracking.Member(
                name=f"sweep-{variant}-lr{m['lr']:.3g}-init{m['init_std']:g}-seed{m['seed']}",
                tags={**tags, **{key: str(value) for key, value in m.items()}},
                params=m,
            )
            for m in members
        ],
        checkpoint=Checkpoint(CHECKPOINT_DIR / f"sweep-{variant}.pt", identity),
        checkpoint_every=params.sweep.checkpoint_every,
    )


if __name__ == "__main__":
    report_user_errors(main)
