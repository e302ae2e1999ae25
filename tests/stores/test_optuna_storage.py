"""The shared Optuna study: a storage reached or one line saying why, an identity that resumes a study only under the
settings it was run with, and best.json and trials.csv read from the study as it stands."""

from __future__ import annotations

import warnings

import optuna
import pytest

from src.errors import StudyError
from src.stores.optuna_storage import PURPOSE, describe_study, open_storage


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("not a url", "storage 'not a url' is not a database URL"),
        ("mongodb://h/db", "storage mongodb://h/db: unsupported database 'mongodb' (use sqlite or postgresql)"),
        ("postgresql://tuner:s3cret@127.0.0.1:1/db", "storage postgresql://tuner:***@127.0.0.1:1/db: cannot connect"),
        ("sqlite:////no/such/dir/optuna.db", "storage sqlite:////no/such/dir/optuna.db: cannot connect"),
        # SQLAlchemy reads ":word@db-host" as a port and raises ValueError, not ArgumentError
        ("postgresql://tuner:s3cret@ss:word@h/db", "storage 'postgresql://tuner:***@h/db' is not a database URL"),
    ],
)
def test_a_bad_storage_url_is_one_error_line_naming_it_without_its_password(storage, message):
    with pytest.raises(StudyError) as error:
        open_storage(storage)
    (line,) = str(error.value).splitlines()
    assert line.startswith(message)
    assert "s3cret" not in line


def test_describing_a_study_names_its_value_without_optunas_experimental_warning_and_a_new_purpose_replaces(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/optuna.db"), direction="maximize")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna marks set_metric_names experimental: no warning may reach the stages
        describe_study(study, "validation accuracy", "tune@bn: its learning rate")
    assert study.metric_names == ["validation accuracy"]
    assert study.user_attrs == {PURPOSE: "tune@bn: its learning rate"}
    describe_study(study, "validation accuracy", "tune@vanilla: its learning rate")
    assert study.user_attrs == {PURPOSE: "tune@vanilla: its learning rate"}
