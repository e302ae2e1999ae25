"""The hand-off files: what a writer writes, its reader reads back as it was written; anything else (a missing file,
column, key or row, a stray row, a malformed value) is one StudyError naming the file, and the stage to re-run."""

from __future__ import annotations

import pytest

from src.errors import StudyError
from src.results.edge import read_edge_final
from src.training.members import MemberTable
from tests.results.tables import _refined, _write_edge, raises_study_error


@pytest.mark.parametrize(
    "spoil",
    [
        lambda members: MemberTable(members.lr[:-5], members.init_std[:-5], members.seed[:-5]),  # a seed short
        lambda members: MemberTable(tuple(lr * 1.01 for lr in members.lr), members.init_std, members.seed),
        lambda members: MemberTable(members.lr, tuple(1.0 for _ in members.lr), members.seed),
    ],
    ids=["fewer members", "other rates", "another init"],
)
def test_edge_results_for_other_members_are_refused_in_one_line(in_tmp, params, spoil):
    members = _refined(params)
    _write_edge(in_tmp, spoil(members))
    with pytest.raises(StudyError) as error:
        read_edge_final("bn", members)
    assert str(error.value) == (
        "results/edge/bn/final.csv: not the members the sweep's results call for; re-run `dvc repro edge@bn`"
    )


def test_a_missing_edge_file_is_one_line(in_tmp, params):
    with raises_study_error(r"^results/edge/bn/final\.csv: no such file \(run the stage that writes it first"):
        read_edge_final("bn", _refined(params))
