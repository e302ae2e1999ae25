"""Stage train@variant: train every seed of one variant at its tuned learning rate, tracked in MLflow."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from src import tracking
from src.atomic import atomic_directory, write_csv, write_json
from src.cli import OneLineParser, UsageError, report_user_errors
from src.config import VARIANTS, Params, load_params
from src.data import PROCESSED_DIR, load_split, read_split_arrays
from src.engine import Schedule, TrainResult, resolve_device, train_members
from src.models import build_model


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
    schedule = Schedule(
        steps=params.train.steps,
        batch_size=params.train.batch_size,
        eval_every=params.train.eval_every,
        momentum=params.train.momentum,
        learning_rates=[learning_rate] * len(seeds),
        data_seeds=seeds,
    )

    tracking.configure(params.tracking.experiment)
    tags = {"stage": "train", "variant": variant, "device": str(device), "lr_source": lr_source}
    with tracking.stage_run(f"train-{variant}", tags=tags, params=params.model_dump()):
        result = train_members(
            model,
            train,
            test,
            schedule,
            probe_images=test.images[: params.train.percentile_examples],
            tracked_units=params.train.tracked_units,
            population_stats=params.model.population_stats,
            population_batches=params.model.population_batches,
        )
        write_outputs(variant, seeds, result, learning_rate, lr_source, params, device)
        tracking_started = time.perf_counter()
        log_seed_runs(variant, seeds, result, learning_rate, params, device)
        tracking_time_s = time.perf_counter() - tracking_started
    print(
        f"train@{variant}: {len(seeds)} seeds × {params.train.steps} steps at lr={learning_rate:g} ({lr_source}) "
        f"in {result.wall_time_s:.1f} s on {device}; MLflow logging took {tracking_time_s:.2f} s "
        f"({100 * tracking_time_s / result.wall_time_s:.1f} % of training)"
    )


def write_outputs(variant, seeds, result: TrainResult, learning_rate, lr_source, params: Params, device) -> None:
    with atomic_directory(Path("models") / variant) as staging:
        for member, seed in enumerate(seeds):
            torch.save(result.model.member_state_dict(member), staging / f"seed_{seed}.pt")
    out = Path("results/train") / variant
    write_csv(
        out / "history.csv",
        ({"step": row["step"], "seed": seeds[row["member"]], "test_accuracy": row["accuracy"],
          "test_loss": row["loss"], "diverged": row["diverged"]} for row in result.history),
        ["step", "seed", "test_accuracy", "test_loss", "diverged"],
    )  # fmt: skip
    write_csv(
        out / "sigmoid_inputs.csv",
        ({"seed": seeds[row.pop("member")], **row} for row in map(dict, result.sigmoid_inputs)),
        ["step", "seed", "unit", "p15", "p50", "p85"],
    )
    final = torch.tensor([row["accuracy"] for row in result.history if row["step"] == params.train.steps])
    write_json(
        out / "summary.json",
        {
            "variant": variant,
            "lr": learning_rate,
            "lr_source": lr_source,
            "seeds": seeds,
            "steps": params.train.steps,
            "batch_size": params.train.batch_size,
            "final_test_accuracy_mean": final.mean().item(),
            "final_test_accuracy_std": final.std().item() if len(final) > 1 else 0.0,
            "n_diverged": sum(result.diverged),
            "device": str(device),
            "wall_time_s": round(result.wall_time_s, 2),
        },
    )


def log_seed_runs(variant, seeds, result: TrainResult, learning_rate, params: Params, device) -> None:
    images, labels = read_split_arrays(PROCESSED_DIR, "train")
    dataset = tracking.numpy_dataset(images, labels, name="mnist-train", source=PROCESSED_DIR / "train.npz")
    for member, seed in enumerate(seeds):
        rows = [row for row in result.history if row["member"] == member]
        metrics = {
            "test_accuracy": [(row["step"], row["accuracy"]) for row in rows],
            "test_loss": [(row["step"], row["loss"]) for row in rows],
        }
        for row in result.sigmoid_inputs:
            if row["member"] == member:
                for level in ("p15", "p50", "p85"):
                    metrics.setdefault(f"sigmoid_input_unit{row['unit']}_{level}", []).append((row["step"], row[level]))
        tracking.log_member_run(
            f"train-{variant}-seed{seed}",
            tags={
                "stage": "train",
                "variant": variant,
                "seed": str(seed),
                "device": str(device),
                "diverged": str(result.diverged[member]).lower(),
            },
            params={**params.model_dump(), "lr": learning_rate, "seed": seed},
            metrics=metrics,
            artifacts=[Path("models") / variant / f"seed_{seed}.pt"],
            datasets=[(dataset, "training")],
        )


if __name__ == "__main__":
    report_user_errors(main)
