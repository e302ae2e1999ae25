"""Stage train@variant: train every seed of one variant at its tuned learning rate, tracked in MLflow.

Each seed is also logged as a standard PyTorch model on its MLflow run; the seed with the best validation accuracy
is registered as a new version of `<experiment>-<variant>` (bn-mnist-bn), which takes the alias `champion` only if it
beats the champion's validation accuracy, else `challenger`.
A killed run resumes from its last checkpoint (.checkpoints/train-<variant>.pt) when it is started again.
"""

from __future__ import annotations

import torch

from src import paths
from src.cli import OneLineParser, report_user_errors
from src.config import VARIANTS, TrainingRun, load_params
from src.data.splits import load_split
from src.engine.scoring import score_members
from src.results.members import write_history, write_predictions, write_sigmoid_inputs
from src.results.train import TrainSummary, write_models
from src.results.tune import TuningSummary
from src.tracking import registry, runs
from src.tracking.export import plain_network
from src.training.members import MemberTable
from src.training.runner import TrainedMembers, train_members


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(description=__doc__)
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    variant = parser.parse_args(argv).variant
    params = load_params()
    run = params.train_run
    learning_rate = TuningSummary.read(paths.stage_dir("tune", variant)).best_lr
    members = MemberTable.tuned(learning_rate, params.model.init_std, params.train.seed_list)

    with train_members(run, variant, members, log_percentiles=True) as trained:
        with trained.clock.phase("scoring"):
            validation = load_split(paths.PROCESSED_DATA, "val", trained.device, run.binarize)
            validation_accuracy = score_members(trained.model, validation)[0].tolist()
        summary = write_outputs(run, variant, trained, validation_accuracy)
        with trained.clock.phase("export"):
            registration = publish_models(run, trained, summary)
        trained.finish([{"final_val_accuracy": accuracy} for accuracy in validation_accuracy])
    standing = (
        f"now @{registry.CHAMPION}"
        if registration.alias == registry.CHAMPION
        else f"@{registry.CHALLENGER}: @{registry.CHAMPION} stays version {registration.champion} "
        f"(validation accuracy {registration.champion_accuracy:.4f})"
    )
    print(
        f"{trained.describe(f'train@{variant}', params.train.steps)}\n"
        f"train@{variant}: registered seed {summary.champion_seed} (best validation accuracy "
        f"{max(validation_accuracy):.4f}) as models:/{registration.name} version {registration.version}, {standing}"
    )


def write_outputs(run: TrainingRun, variant: str, trained: TrainedMembers, validation_accuracy: list[float]):
    """models/<variant>/seed_<s>.pt (Algorithm 2's statistics), the histories and summary.json; the summary."""
    members, result, seeds = trained.members, trained.result, list(trained.members.seed)
    predictions = trained.predictions()
    with trained.clock.phase("export"):
        states = [trained.model.member_state_dict(member) for member in range(len(seeds))]
        write_models(paths.model_dir(variant), states, seeds)
        directory = paths.stage_dir("train", variant)
        write_history(directory, result, members)
        write_sigmoid_inputs(directory, result, members)
        write_predictions(directory, predictions, members)
    final = torch.tensor(result.final.accuracy, dtype=torch.float64)
    # the test split never chooses: the champion is the best by validation accuracy (the first of equals)
    champion = max(range(len(seeds)), key=lambda member: validation_accuracy[member])
    summary = TrainSummary(
        variant=variant,
        lr=members.lr[0],
        lr_source="tune",
        seeds=seeds,
        steps=run.horizon.steps,
        batch_size=run.batch_size,
        final_test_accuracy=result.final.accuracy,
        final_test_accuracy_mean=final.mean().item(),
        final_test_accuracy_std=final.std().item() if len(final) > 1 else 0.0,
        final_val_accuracy=validation_accuracy,
        champion_seed=seeds[champion],
        n_diverged=sum(result.final.diverged),
        device=str(trained.device),
    )
    summary.write(directory)
    return summary


def publish_models(run: TrainingRun, trained: TrainedMembers, summary: TrainSummary) -> registry.Registration:
    """Each seed as a standard PyTorch model on its MLflow run, and the best seed registered, tagged with the DVC
    experiment and the stage's params; its registration (the version and the alias it took)."""
    for member_run, seed in zip(trained.member_runs.run_ids, summary.seeds, strict=True):
        runs.log_artifact(member_run, paths.model_dir(summary.variant) / f"seed_{seed}.pt")
    networks = [plain_network(trained.model, member) for member in range(len(summary.seeds))]
    example_images = trained.splits["test"].images.cpu().numpy()
    logged = registry.log_networks(trained.member_runs.run_ids, networks, example_images)
    best = summary.seeds.index(summary.champion_seed)
    stage_params = runs.flatten(run.read)
    tags = {
        "seed": str(summary.champion_seed),
        "device": summary.device,
        **runs.experiment_tags(),
        **{key: str(value) for key, value in stage_params.items()},
    }
    name = f"{run.experiment}-{summary.variant}"
    return registry.register(logged[best].model_uri, name, summary.final_val_accuracy[best], tags)


if __name__ == "__main__":
    report_user_errors(main)
