"""The MLflow tracking store the study logs to: the project's mlflow.db (MLflow's own default layout) or the server
$MLFLOW_TRACKING_URI names, its experiments (the study's, and one per stage for the member runs of MEMBERS_APART), and
the runs a dead process left RUNNING."""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from src import paths
from src.errors import StudyError
from src.stores import databases
from src.stores.workers import HOST, process_alive

# MLflow's defaults retry an unreachable server for about 4 minutes (7 retries), each request waiting up to 120 s.
HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


# MLflow 3's experiment tag for its UI: runs, metrics and models ("Model training"), not GenAI's traces
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

# The stages whose member runs (hundreds of sweep cells, edge rates and tuning trials) go to an experiment of their own,
# <experiment>-<stage>, so that the stage runs fill the main experiment's first page in `mlflow ui`. train@'s seed runs,
# which hold the logged models and the registry's champion, stay beside their stage run.
MEMBERS_APART = ("tune", "sweep", "edge")


def configure(experiment: str) -> str:
    """Point MLflow at $MLFLOW_TRACKING_URI (default: the project's mlflow.db) and the named experiment; its id.
    A tracking server that does not answer is a StudyError within seconds."""
    # MLflow checks this before each usage event: the study runs where there is no internet to send it to
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri and urllib.parse.urlsplit(uri).scheme in ("http", "https"):
        for name, value in HTTP_BOUNDS.items():
            os.environ.setdefault(name, value)
        check_server(uri)
    mlflow.set_tracking_uri(uri or _default_store())
    experiment_id = experiment_made(experiment)
    mlflow.set_experiment(experiment_id=experiment_id)
    client = MlflowClient()
    apart = [client.get_experiment_by_name(_members_experiment_name(experiment, stage)) for stage in MEMBERS_APART]
    for holding_runs in [experiment_id, *(found.experiment_id for found in apart if found is not None)]:
        close_abandoned_runs(holding_runs)
    return experiment_id


def members_experiment(experiment: str, stage: str) -> str:
    """The id of the experiment that holds `stage`'s member runs, made on first use: <experiment>-<stage> for the stages
    of MEMBERS_APART, else `experiment` itself."""
    return experiment_made(_members_experiment_name(experiment, stage))


def _members_experiment_name(experiment: str, stage: str) -> str:
    return f"{experiment}-{stage}" if stage in MEMBERS_APART else experiment


def experiment_made(name: str) -> str:
    """The id of the experiment `name` in the current store, made on first use (in the default store, with its
    artifacts under the project's mlruns/) and tagged for MLflow's model-training view."""
    # Workers started together into a fresh store would each create its tables and tag its experiment: one at a time
    with databases.first_use(mlflow.get_tracking_uri()):
        if mlflow.get_tracking_uri() == _default_store():
            _create_at_root(name)
        client = MlflowClient()
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            experiment = client.get_experiment(client.create_experiment(name))
        for key, value in EXPERIMENT_KIND.items():
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def _default_store() -> str:
    """The project's own store: mlflow.db at its root."""
    return f"sqlite:///{databases.project_root() / paths.MLFLOW_STORE}"


def _create_at_root(experiment: str) -> None:
    """Create `experiment` in the default store with its artifacts under the project's mlruns/<experiment id>/.

    MLflow resolves its default artifact root, ./mlruns, against the working directory: an experiment created from a
    temporary experiment workspace would keep every later run's artifacts where DVC deletes them.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore  # half a second to import, for this alone

    store = SqlAlchemyStore(mlflow.get_tracking_uri(), str(databases.project_root() / paths.MLFLOW_ARTIFACTS))
    if store.get_experiment_by_name(experiment) is None:
        store.create_experiment(experiment)


def check_server(uri: str) -> None:
    """A StudyError unless an MLflow tracking server answers at `uri` within databases.CONNECT_TIMEOUT_S."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]  # credentials stay out of the probe: MLflow sends its own
    path = parts.path.rstrip("/") + "/health"
    health = urllib.parse.urlunsplit((parts.scheme, host, path, "", ""))
    try:
        urllib.request.urlopen(health, timeout=databases.CONNECT_TIMEOUT_S).close()
    except urllib.error.HTTPError as error:  # `mlflow server` answers /health with 200, or 401/403 behind a login
        if error.code in (502, 503, 504):  # a proxy that cannot reach it
            raise StudyError(f"tracking server {databases.redact(uri)}: cannot connect (HTTP {error.code})") from None
        if error.code not in (401, 403):
            raise StudyError(
                f"tracking server {databases.redact(uri)}: not an MLflow server (GET {path}: HTTP {error.code})"
            ) from None
    except (urllib.error.URLError, OSError) as error:
        why = getattr(error, "reason", None) or error
        raise StudyError(f"tracking server {databases.redact(uri)}: cannot connect ({why})") from None


def runs_exist(run_ids: Sequence[str]) -> bool:
    """Whether every run of `run_ids` is in the current store (a checkpoint may outlive the store it logged to)."""
    client = MlflowClient()
    try:
        for run_id in run_ids:
            client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return False
    return True


def close_abandoned_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs that a process on this host left behind when it died (kill -9, power loss).

    A run whose process is alive is left alone, so concurrent workers are never disturbed.
    """
    client = MlflowClient()
    abandoned = [
        run.info.run_id
        for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'")
        if run.data.tags.get("host") == HOST and not process_alive(int(run.data.tags.get("pid", "0")))
    ]
    for run_id in abandoned:
        client.set_terminated(run_id, status=RunStatus.to_string(RunStatus.KILLED))
    return abandoned
