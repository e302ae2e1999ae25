"""A one-node SLURM cluster of our own on 127.0.0.1, for the tests that submit jobs (conftest.py's `slurm_conf`).

munged with a key made for it, slurmctld and slurmd run in the foreground as background processes, all under one
temporary directory; the clients (sbatch, squeue) find them through SLURM_CONF. The node is this machine, with its
real CPUs and memory as `slurmd -C` reports them.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.processes import free_port

DAEMONS = ("mungekey", "munged", "slurmctld", "slurmd", "sbatch", "sinfo", "scancel")
START_S = 30  # how long the daemons get to come up


def binaries() -> dict[str, str]:
    """Each program the cluster needs, by name; fails the test naming what is missing."""
    search = os.pathsep.join(["/usr/sbin", "/usr/bin", os.environ.get("PATH", "")])  # daemons live in sbin
    found = {name: shutil.which(name, path=search) for name in DAEMONS}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        pytest.fail(f"SLURM is not installed (no {', '.join(missing)}): apt-get install slurm-wlm munge")
    return found


def configuration(home: Path, node: str, user: str) -> str:
    """slurm.conf of one node on 127.0.0.1, every file under `home`; `node`: `slurmd -C`'s NodeName line."""
    hardware = node.split(maxsplit=1)[1]  # CPUs=... RealMemory=...: this machine's, under our own node name
    return f"""\
ClusterName=bn-mnist-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
# listen on the address the host name resolves to (checked to be loopback), not on every address
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={home / "munge.socket"}
StateSaveLocation={home / "state"}
SlurmdSpoolDir={home / "spool"}
SlurmctldPidFile={home / "slurmctld.pid"}
SlurmdPidFile={home / "slurmd.pid"}
SlurmctldLogFile={home / "slurmctld.log"}
SlurmdLogFile={home / "slurmd.log"}
# no cgroups in a container: track a job's processes by their parents, bind no task to cores
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
# sbatch --wait polls every 2 s while MinJobAge is at most 4 s (else it backs off to 32 s), and a poll that often
# sees each finished task before its record goes
MinJobAge=4
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 {hardware} State=UNKNOWN
PartitionName=local Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _loopback_hostname() -> None:
    """NoInAddrAny binds the address this host's name resolves to: refuse one that is not loopback."""
    hostname = socket.gethostname()
    address = socket.gethostbyname(hostname)
    if not ipaddress.ip_address(address).is_loopback:
        pytest.fail(
            f"this host's name {hostname} resolves to {address}, so slurmctld would listen there, not on 127.0.0.1: "
            f"map it to 127.0.0.1 in /etc/hosts"
        )


def _start(stack: ExitStack, command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """`command` in the background, its output into `log`, stopped (SIGTERM, then SIGKILL) when `stack` closes."""
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    stack.callback(stop)
    return process


def _wait_until(ready: Callable[[], bool], what: str, logs: list[Path]) -> None:
    """Return once `ready()`; after START_S, fail saying `what` went wrong, with the last lines of `logs`."""
    deadline = time.monotonic() + START_S
    while not ready():
        if time.monotonic() > deadline:
            tails = "; ".join(f"{log.name}: {' | '.join(log.read_text().splitlines()[-3:])}" for log in logs)
            pytest.fail(f"{what} within {START_S} s ({tails})")
        time.sleep(0.2)


@contextmanager
def one_node_cluster(home: Path) -> Iterator[Path]:
    """munged, slurmctld and slurmd running with their state under `home`; yields slurm.conf's path."""
    programs = binaries()
    _loopback_hostname()
    for folder in ("state", "spool"):
        (home / folder).mkdir()
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run([programs["mungekey"], "--create", "--keyfile", home / "munge.key"], check=True)
    node = subprocess.run([programs["slurmd"], "-C"], capture_output=True, text=True, check=True).stdout
    conf = home / "slurm.conf"
    conf.write_text(configuration(home, node.splitlines()[0], user))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    with ExitStack() as stack:
        munged = [
            programs["munged"],
            "--foreground",
            "--force",  # its socket sits in a private temporary directory, which munged refuses without it
            f"--key-file={home / 'munge.key'}",
            f"--socket={home / 'munge.socket'}",
            f"--pid-file={home / 'munged.pid'}",
            f"--seed-file={home / 'munged.seed'}",
        ]
        _start(stack, munged, home / "munged.out", env)
        _wait_until((home / "munge.socket").exists, "munged did not start", [home / "munged.out"])
        _start(stack, [programs["slurmctld"], "-D"], home / "slurmctld.out", env)
        _start(stack, [programs["slurmd"], "-D", "-N", "localhost"], home / "slurmd.out", env)
        # at the end, cancel any job left while slurmctld still answers: a job's processes would outlive slurmd
        stack.callback(subprocess.run, [programs["scancel"], "--full", "--quiet", f"--user={user}"], env=env)

        def idle() -> bool:
            listed = subprocess.run([programs["sinfo"], "-h", "-o", "%T"], capture_output=True, text=True, env=env)
            return listed.stdout.strip() == "idle"

        logs = [home / "slurmctld.out", home / "slurmd.out"]
        _wait_until(idle, "the node did not come up idle", logs)
        yield conf
