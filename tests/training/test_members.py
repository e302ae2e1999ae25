"""Who trains: one member table for both designs, one row per member, the members of a seed side by side."""

from __future__ import annotations

import pytest

from src.config import SweepConfig
from src.training.members import MemberTable

SWEEP = SweepConfig(
    lr_min=0.1,
    lr_max=10.0,
    lrs_per_decade=1,
    init_stds=[0.1, 1.0],
    seeds=2,
    steps=100,
    eval_every=50,
    evals_per_decade=0,
    checkpoint_every=100,
    unit="variant",
    storage="sqlite:///optuna.db",
    heartbeat_s=10,
)


def test_train_at_is_one_member_per_seed_at_one_rate_and_one_init():
    members = MemberTable.tuned(0.5, 0.1, [0, 1, 2])
    assert (members.lr, members.init_std, members.seed) == ((0.5, 0.5, 0.5), (0.1, 0.1, 0.1), (0, 1, 2))
    assert len(members) == 3
    assert members.data_seeds == (0, 1, 2)


def test_train_at_members_are_told_apart_by_their_seed_alone():
    members = MemberTable.tuned(0.5, 0.1, [0, 1, 2])
    assert members.labels == ("seed",)
    assert members.rows() == [{"seed": 0}, {"seed": 1}, {"seed": 2}]
    assert [members.name(member) for member in range(3)] == ["seed0", "seed1", "seed2"]


def test_the_sweep_is_every_seed_by_init_std_by_rate_seed_first_then_init_std_then_rate():
    members = MemberTable.grid(SWEEP)
    assert SWEEP.learning_rates == pytest.approx([0.1, 1.0, 10.0])
    expected = [(lr, init_std, seed) for seed in (0, 1) for init_std in (0.1, 1.0) for lr in SWEEP.learning_rates]
    assert list(zip(members.lr, members.init_std, members.seed, strict=True)) == expected
    assert len(members) == 2 * 2 * 3


def test_the_sweeps_members_of_one_seed_share_its_data_order():
    members = MemberTable.grid(SWEEP)
    assert members.data_seeds == (0, 1)
    per_seed = len(members) // len(members.data_seeds)
    assert [members.data_seeds[k // per_seed] for k in range(len(members))] == list(members.seed)


def test_sweep_members_are_labelled_by_rate_init_std_and_seed_in_the_files_column_order():
    members = MemberTable.grid(SWEEP)
    assert members.labels == ("lr", "init_std", "seed")
    assert members.rows()[4] == {"lr": SWEEP.learning_rates[1], "init_std": 1.0, "seed": 0}
    assert list(members.rows()[4]) == ["lr", "init_std", "seed"]
    assert members.name(4) == "lr1-init1-seed0"
    assert MemberTable((0.316227766,), (0.1,), (2,)).name(0) == "lr0.316-init0.1-seed2"


@pytest.mark.parametrize(
    "seeds",
    [(0, 1, 0, 1), (0, 0, 1), (1, 0, 0, 1)],
    ids=["interleaved", "unequal-counts", "split-seed"],
)
def test_a_table_whose_seeds_are_not_side_by_side_in_equal_numbers_is_refused(seeds):
    count = len(seeds)
    with pytest.raises(ValueError, match="the members of a seed must sit side by side, as many per seed"):
        MemberTable((0.1,) * count, (0.1,) * count, seeds)


@pytest.mark.parametrize(
    ("lr", "init_std", "seed"),
    [((0.1, 0.2), (0.1,), (0, 0)), ((), (), ())],
    ids=["unequal-columns", "empty"],
)
def test_a_table_without_one_rate_init_and_seed_per_member_is_refused(lr, init_std, seed):
    with pytest.raises(ValueError, match="one lr, init std and seed per member"):
        MemberTable(lr, init_std, seed)


def test_a_label_that_is_not_a_column_is_refused():
    with pytest.raises(ValueError, match=r"labels must be among \('lr', 'init_std', 'seed'\), got \('depth',\)"):
        MemberTable((0.1,), (0.1,), (0,), labels=("depth",))


# --- units of work: how the sweep's grid is cut (params.sweep.unit) -----------------------------------------------


def test_by_default_the_whole_grid_is_one_unit():
    members = MemberTable.grid(SWEEP)
    assert members.units("variant") == [tuple(range(12))]
    assert members.unit_name(tuple(range(12))) == ""


def test_a_seed_cut_gives_each_seed_its_members_and_never_mixes_seeds():
    members = MemberTable.grid(SWEEP)
    units = members.units("seed")
    assert units == [tuple(range(6)), tuple(range(6, 12))]
    assert [{members.seed[k] for k in unit} for unit in units] == [{0}, {1}]
    assert [members.unit_name(unit) for unit in units] == ["-seed0", "-seed1"]


def test_a_rate_cut_gives_each_seed_a_unit_per_run_of_k_rates_with_every_init_std():
    members = MemberTable.grid(SWEEP)  # per seed: init 0.1 at rates 0.1, 1, 10, then init 1.0 at the same rates
    units = members.units({"seed_and_rates": 2})
    assert units == [(0, 1, 3, 4), (2, 5), (6, 7, 9, 10), (8, 11)]
    assert sorted(k for unit in units for k in unit) == list(range(12)), "each member in exactly one unit"
    assert [members.unit_name(unit) for unit in units] == [
        "-seed0-lr0.1-1",
        "-seed0-lr10",
        "-seed1-lr0.1-1",
        "-seed1-lr10",
    ]


def test_a_subset_keeps_the_order_asked_for_and_the_labels():
    members = MemberTable.grid(SWEEP)
    unit = members.subset((2, 5))
    assert (unit.lr, unit.init_std, unit.seed) == ((members.lr[2],) * 2, (0.1, 1.0), (0, 0))
    assert unit.labels == members.labels and unit.data_seeds == (0,)


# --- edge@: refined rates between each seed's bracket ---------------------------------------------------------


def test_refining_puts_rates_between_evenly_on_a_log_scale_strictly_inside_each_bracket():
    members = MemberTable.refining([(0, 0.1, 1.0, 10.0)], rates_between=5)
    step = 10 ** (1 / 6)
    assert members.lr == pytest.approx(tuple(step**k for k in range(1, 6)))
    assert members.init_std == (0.1,) * 5 and members.seed == (0,) * 5
    assert min(members.lr) > 1.0 and max(members.lr) < 10.0  # the ends were trained by the sweep already
    assert MemberTable.refining([(0, 0.1, 1.0, 4.0)], rates_between=1).lr == pytest.approx((2.0,))


def test_refining_keeps_the_brackets_in_order_seed_by_seed_each_seed_its_own_data_order():
    brackets = [(0, 0.1, 1.0, 10.0), (0, 1.0, 0.01, 0.1), (1, 0.1, 10.0, 100.0), (1, 1.0, 0.1, 1.0)]
    members = MemberTable.refining(brackets, rates_between=2)
    assert members.seed == (0, 0, 0, 0, 1, 1, 1, 1) and members.data_seeds == (0, 1)
    assert members.init_std == (0.1, 0.1, 1.0, 1.0, 0.1, 0.1, 1.0, 1.0)
    third = 10 ** (1 / 3)
    expected = [
        1.0 * third,
        1.0 * third**2,
        0.01 * third,
        0.01 * third**2,
        10 * third,
        10 * third**2,
        0.1 * third,
        0.1 * third**2,
    ]
    assert members.lr == pytest.approx(tuple(expected))
    assert members.labels == ("lr", "init_std", "seed")  # its final.csv is labelled as the sweep's


def test_seeds_with_unequal_numbers_of_brackets_cannot_share_one_model():
    with pytest.raises(ValueError, match="the members of a seed must sit side by side, as many per seed"):
        MemberTable.refining([(0, 0.1, 1.0, 10.0), (0, 1.0, 1.0, 10.0), (1, 0.1, 1.0, 10.0)], rates_between=2)
