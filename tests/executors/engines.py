"""Real engines started on this machine: a single-node Slurm and a local Ray with logical GPUs.

Plain context managers, so the tests' fixtures and ``benchmarks/executors.py``
start them the same way: in a temporary folder, on free ports, stopped by the
process ids they wrote. ``Unavailable`` says why one cannot run here.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo.executors import K8sExecutor

SLURM_PACKAGES = "slurmctld slurmd munge slurm-client"


class Unavailable(Exception):
    """The engine cannot run on this machine; the message says why and what to install."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SLURM_CONF = """\
ClusterName=hpotest
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket,cred_expire=10
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
KillWait=5
GresTypes=gpu
ReturnToService=2
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _stop(pid_files: list[Path]) -> None:
    for pid_file in pid_files:
        if pid_file.exists():
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGTERM)


@contextlib.contextmanager
def single_node_slurm(cpus: int = 3) -> Iterator[dict[str, str]]:
    """A one-node Slurm cluster (munged, slurmctld, slurmd); yields its client environment.

    Memory is not a consumable resource here (``CR_CPU``): with Slurm's default
    every task would claim the node's whole memory and the array would run
    one task at a time. ``config_overrides`` lets the node offer more CPUs
    than it has, so a small array runs at once on a 2-core machine.
    """
    missing = [t for t in ("munged", "mungekey", "slurmctld", "slurmd", "sbatch") if not _which(t)]
    if missing:
        raise Unavailable(
            f"Slurm is not installed ({', '.join(missing)} missing): "
            f"apt-get install -y {SLURM_PACKAGES}"
        )
    if os.geteuid() != 0:
        raise Unavailable("a single-node Slurm needs root to run slurmd")
    root = Path(tempfile.mkdtemp(prefix="hpo-slurm-"))
    for sub in ("munge", "state", "spool"):
        (root / sub).mkdir()
    os.chmod(root, 0o755)
    os.chmod(root / "munge", 0o755)  # munged refuses a socket folder others cannot enter
    key = root / "munge.key"
    subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True)
    os.chmod(key, 0o600)
    pids = [root / "slurmd.pid", root / "slurmctld.pid", root / "munged.pid"]
    conf = root / "slurm.conf"
    conf.write_text(
        _SLURM_CONF.format(
            host=socket.gethostname().split(".")[0],
            ctld_port=_free_port(),
            d_port=_free_port(),
            root=root,
            cpus=cpus,
        )
    )
    env = {"SLURM_CONF": str(conf)}
    try:
        subprocess.run(
            [
                _which("munged"),
                f"--key-file={key}",
                f"--socket={root / 'munge' / 'munge.socket'}",
                f"--pid-file={root / 'munged.pid'}",
                f"--log-file={root / 'munged.log'}",
                f"--seed-file={root / 'munge.seed'}",
            ],
            check=True,
        )
        subprocess.run([_which("slurmctld"), "-c", "-f", str(conf)], check=True)
        subprocess.run([_which("slurmd"), "-f", str(conf)], check=True)
        deadline = time.monotonic() + 30
        state = ""
        while state != "idle":
            if time.monotonic() > deadline:
                raise RuntimeError(f"Slurm did not become idle (state '{state}'); logs in {root}")
            time.sleep(0.2)
            state = subprocess.run(
                ["sinfo", "-h", "-o", "%T"],
                capture_output=True,
                text=True,
                env={**os.environ, **env},
            ).stdout.strip()
        yield env
    finally:
        _cancel_all(env)
        _stop(pids)
        time.sleep(0.5)
        shutil.rmtree(root, ignore_errors=True)


def _cancel_all(env: dict[str, str], timeout: float = 20) -> None:
    """Cancel every job left (a failed test's) and wait for its processes to end."""
    env = {**os.environ, **env}
    ids = subprocess.run(
        ["squeue", "-h", "-o", "%A"], capture_output=True, text=True, env=env
    ).stdout.split()
    if not ids:
        return
    subprocess.run(["scancel", *ids], capture_output=True, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = subprocess.run(["squeue", "-h"], capture_output=True, text=True, env=env).stdout
        if not left.strip():
            return
        time.sleep(0.5)


def _which(tool: str) -> str:
    for folder in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        path = Path(folder) / tool
        if path.exists():
            return str(path)
    return shutil.which(tool) or ""


@contextlib.contextmanager
def local_ray(num_cpus: int = 2, num_gpus: int = 4) -> Iterator[Any]:
    """A local Ray with logical GPUs; each GPU task gets its own CUDA_VISIBLE_DEVICES."""
    try:
        import ray
    except ImportError:
        raise Unavailable("Ray is not installed: pip install 'hpo[ray]'") from None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token written to ~/.ray
    # A short folder: Ray's socket paths under it must stay within the 107-byte limit.
    temp = tempfile.mkdtemp(prefix="r", dir="/tmp")
    # The test suite hides GPUs (CUDA_VISIBLE_DEVICES=""); Ray then refuses logical ones.
    hidden = os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    try:
        ray.init(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            _temp_dir=temp,
            log_to_driver=False,
            include_dashboard=False,
        )
    finally:
        if hidden is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = hidden
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def _expand(text: str, env: dict[str, str]) -> str:
    """What the kubelet does to ``$(VAR)`` in a container's command and args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), text)


def mount_config_map(executor: K8sExecutor, folder: Path) -> Path:
    """The study ConfigMap's files in ``folder``, as its volume mount shows them to a pod."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in executor.config_map()["data"].items():
        (folder / name).write_text(text)
    return folder


def run_pod(executor: K8sExecutor, index: int, mount: Path) -> subprocess.Popen[str]:
    """One pod of the Indexed Job as a local process: its command and args with
    ``JOB_COMPLETION_INDEX`` expanded, its env with the Secret's value, the ConfigMap mounted."""
    container = executor.job()["spec"]["template"]["spec"]["containers"][0]
    secret = executor.secret()["stringData"]
    env = {"JOB_COMPLETION_INDEX": str(index)}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            env[item["name"]] = secret[item["valueFrom"]["secretKeyRef"]["key"]]
    argv = [_expand(a, env) for a in container["command"] + container["args"]]
    if argv[:2] != ["hpo", "worker"]:
        raise AssertionError(f"the pod does not run hpo worker: {argv}")
    argv[2] = str(mount / Path(argv[2]).name)
    return subprocess.Popen(
        [sys.executable, "-m", "hpo", *argv[1:]],
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
