"""A variant's sweep as a plan: the grid's members, cut into units as params.sweep.unit says, each unit named for
its checkpoint, and an identity that tells the same checkout's study from another's."""

from __future__ import annotations

import pytest

from src.config import load_params, with_overrides
from src.sweep.plan import SweepPlan
from src.training.members import MemberTable
from tests import synthetic


@pytest.fixture
def project(tmp_path, monkeypatch, repo_root):
    monkeypatch.chdir(tmp_path)
    synthetic.write_processed(tmp_path / "data" / "processed")
    return with_overrides(
        load_params(repo_root / "params.yaml"),
        {"sweep.seeds": 2, "sweep.lr_min": 1.0, "sweep.lr_max": 10.0, "evaluate.figure1_lrs": [1.0]},
    )


def test_the_plan_is_the_grid_cut_into_the_units_params_ask_for(project):
    for cut, units in (("variant", 1), ("seed", 2), ({"seed_and_rates": 2}, 4)):
        params = with_overrides(project, {"sweep.unit": cut})
        plan = SweepPlan.of(params.sweep_run, params.sweep, "bn")
        assert plan.members == MemberTable.grid(params.sweep) and len(plan.units) == units
        assert sorted(k for unit in plan.units for k in unit) == list(range(len(plan.members)))


def test_a_unit_is_named_for_its_variant_and_its_part_of_the_grid(project):
    whole = SweepPlan.of(project.sweep_run, project.sweep, "bn")
    by_seed = with_overrides(project, {"sweep.unit": "seed"})
    per_seed = SweepPlan.of(by_seed.sweep_run, by_seed.sweep, "vanilla")
    assert whole.unit_name(0) == "sweep-bn"
    assert [per_seed.unit_name(unit) for unit in range(2)] == ["sweep-vanilla-seed0", "sweep-vanilla-seed1"]


def test_the_identity_changes_with_what_decides_the_numbers_and_not_with_where_they_are_queued(project):
    identity = SweepPlan.of(project.sweep_run, project.sweep, "bn").identity
    elsewhere = with_overrides(project, {"sweep.storage": "sqlite:///elsewhere.db", "sweep.heartbeat_s": 30})
    assert SweepPlan.of(elsewhere.sweep_run, elsewhere.sweep, "bn").identity == identity
    longer = with_overrides(project, {"sweep.steps": 300})
    assert SweepPlan.of(longer.sweep_run, longer.sweep, "bn").identity != identity
    assert SweepPlan.of(project.sweep_run, project.sweep, "vanilla").identity != identity
