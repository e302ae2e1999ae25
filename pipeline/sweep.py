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
from src.checkpoint import CHECKPOINT_DIR, Checkpoint
from src.cli import OneLineParser, UsageError, report_user_errors
from src.config import VARIANTS, Params, load_params
from src.data import PROCESSED_DIR, load_split
from src.engine import Trainer, TrainingData, resolve_device, schedule_for
from src.models import build_model
from src.provenance import code_sha256, data_sha256, file_sha256
from src.resumable import StageRun, tracked_training


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
    try:
        device = resolve_device(params.train.device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    members = grid(params)

    train = load_split(PROCESSED_DIR, "train", device, params.data.binarize)
    test = load_split(PROCESSED_DIR, "test", device, params.data.binarize)
    seeds, init_stds = [m["seed"] for m in members], [m["init_std"] for m in members]
    model = build_model(params.model, variant, seeds, device, init_stds=init_stds)
    schedule = schedule_for(params, "sweep", [m["lr"] for m in members], data_seeds=params.sweep.seed_list)
    probe = test.images[: params.train.percentile_examples]
    trainer = Trainer(model, TrainingData(train, test, probe, params.train.tracked_units), schedule)

    stage = StageRun(
        name=f"sweep-{variant}",
        tags={"stage": "sweep", "variant": variant, "device": str(device)},
        params={
            "model": params.model.model_dump(),
            "sweep": params.sweep.model_dump(),
            "train": params.train.model_dump(),
        },
        members=[
            tracking.Member(
                name=f"sweep-{variant}-lr{m['lr']:.3g}-init{m['init_std']:g}-seed{m['seed']}",
                tags={"stage": "sweep", "variant": variant, "device": str(device), **{k: str(v) for k, v in m.items()}},
                params=m,
            )
            for m in members
        ],
        checkpoint=Checkpoint(CHECKPOINT_DIR / f"sweep-{variant}.pt", checkpoint_identity(params, variant, device)),
        checkpoint_every=params.sweep.checkpoint_every,
    )
    tracking.configure(params.tracking.experiment)
    with tracked_training(
        trainer, stage, histories=partial(results.metric_histories, with_percentiles=False)
    ) as outcome:
        result = outcome.result
        out = Path("results/sweep") / variant
        results.write_history(out / "history.csv", result, members)
        results.write_sigmoid_inputs(out / "sigmoid_inputs.csv", result, members)
        results.write_final(out / "final.csv", result.final, members)
        write_json(out / "summary.json", {"variant": variant, "members": len(members), "steps": params.sweep.steps,
                                          "device": str(device)})  # fmt: skip
        outcome.member_runs.finish(
            tags=[{"diverged": str(diverged).lower()} for diverged in result.final.diverged],
            metrics=[{"final_test_accuracy": accuracy} for accuracy in result.final.accuracy],
        )
        timing = {"sweep_wall_time_s": result.wall_time_s, "checkpoint_overhead": outcome.checkpoint_overhead}
        tracking.log_results(timing, artifacts=[])
    resumed = f", resumed from step {outcome.resumed_from:,}" if outcome.resumed_from else ""
    print(
        f"sweep@{variant}: {len(members)} members × {params.sweep.steps:,} steps in {result.wall_time_s:.1f} s on "
        f"{device}{resumed}; {outcome.checkpoints} checkpoints took {outcome.checkpoint_s:.2f} s "
        f"({100 * outcome.checkpoint_overhead:.2f} % of training)"
    )


def checkpoint_identity(params: Params, variant: str, device: torch.device) -> dict:
    """Everything that decides this stage's outputs: a checkpoint made under anything else is not resumed."""
    return {
        "stage": "sweep",
        "variant": variant,
        "device": str(device),
        "params": {
            "data": {"binarize": params.data.binarize},
            "model": params.model.model_dump(),
            "sweep": params.sweep.model_dump(exclude={"checkpoint_every"}),
            "train": params.train.model_dump(
                include={"batch_size", "momentum", "tracked_units", "percentile_examples"}
            ),
            "tracking": params.tracking.model_dump(),
        },
        "data_sha256": data_sha256(PROCESSED_DIR, ("train", "test")),
        "code_sha256": {**code_sha256(), __name__: file_sha256(Path(__file__))},
    }


if __name__ == "__main__":
    report_user_errors(main)
