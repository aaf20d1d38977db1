"""A Spark standalone cluster on 127.0.0.1, started from the installed pyspark, for tests and benchmarks.

The pyspark wheel ships no `start-master.sh` / `start-worker.sh`, so the master and the workers are launched
with `bin/spark-class`, which execs java: the PID we hold is the JVM's own. Everything the cluster writes
(daemon logs, executor work dirs, shuffle and spill files) stays under one directory, and stopping it signals
only processes that were started here: the daemons by PID, and the executors and their Python workers found
by their working directory, which Spark puts inside the worker's work dir.

    with standalone_cluster(workers=2, cores=1, memory="2g") as cluster:
        subprocess.run(["curate", "ingest", ..., "--master", cluster.master_url], env=cluster.env)
        cluster.executor_pids()   # the CoarseGrainedExecutorBackend JVMs of the running application(s)
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

JAVA_17 = "/usr/lib/jvm/java-17-openjdk-amd64"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"
# Spark's default log4j profile prints these at INFO on stderr, which we send to the daemon's log file.
MASTER_READY = re.compile(r"I have been elected leader|New state: ALIVE")
WORKER_READY = re.compile(r"Successfully registered with master")
STARTUP_TIMEOUT = 120.0
# JVM flags for short-lived processes: client compiler only, single-threaded GC.
QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


class ClusterError(RuntimeError):
    """The cluster did not come up; the message carries the tail of the daemon's log."""


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    # Racy in principle (the port is released before Spark binds it), but Spark fails loudly if it is taken.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- /proc helpers (Linux): also used by benchmarks to sum memory over a process tree ------------------


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return None


def cmdline(pid: int) -> str:
    return (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ").strip()


def cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def parent_pid(pid: int) -> int | None:
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its closing one.
    return int(stat.rsplit(")", 1)[1].split()[1])


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root: int) -> list[int]:
    """`root` and every process below it, from one snapshot of /proc."""
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        parent = parent_pid(pid)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def process_group(pgid: int) -> list[int]:
    """Live members of a process group (e.g. a driver started with `start_new_session=True` and its JVM)."""
    members = []
    for pid in all_pids():
        stat = _read(f"/proc/{pid}/stat")
        if stat is not None and int(stat.rsplit(")", 1)[1].split()[2]) == pgid and alive(pid):
            members.append(pid)
    return members


def rss_bytes(pid: int) -> int:
    """Resident set size of one process; 0 if it has gone."""
    status = _read(f"/proc/{pid}/status")
    if status is None:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


def alive(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    # A zombie has exited; only its parent's wait() is missing.
    return stat is not None and stat.rsplit(")", 1)[1].split()[0] != "Z"


def _is_under(path: str | None, root: Path) -> bool:
    return path is not None and (path == str(root) or path.startswith(str(root) + os.sep))


# --- the cluster ---------------------------------------------------------------------------------------


@dataclass
class StandaloneCluster:
    """A running cluster. `env` is what a driver process needs to talk to it (PYSPARK_PYTHON, JAVA_HOME...)."""

    root: Path
    master_url: str
    env: dict[str, str]
    cores: int
    memory: str
    master: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def master_pid(self) -> int:
        assert self.master is not None
        return self.master.pid

    @property
    def worker_pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]

    @property
    def spark_conf(self) -> dict[str, str]:
        """Settings a driver must pass: curate's default executor memory (4g) would never fit a small worker."""
        return {"spark.executor.memory": self.memory}

    def spark_conf_args(self) -> list[str]:
        """`spark_conf` as `--spark-conf key=value` arguments for the curate CLI."""
        return [arg for key, value in self.spark_conf.items() for arg in ("--spark-conf", f"{key}={value}")]

    def log(self, name: str) -> str:
        """A daemon's log: "master", "worker-0", ..."""
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def app_ids(self) -> list[str]:
        """Applications that have had executors here, oldest first (Spark's ids sort by start time)."""
        return sorted({p.name for p in self.work_dir.glob("worker-*/app-*")})

    def executor_dirs(self, app_id: str) -> list[Path]:
        return sorted(self.work_dir.glob(f"worker-*/{app_id}/*"))

    def executor_pids(self, app_id: str | None = None) -> list[int]:
        """Live executor JVMs of this cluster (optionally of one application), found by their work dir."""
        scopes = [self.work_dir] if app_id is None else list(self.work_dir.glob(f"worker-*/{app_id}"))
        return sorted(
            pid
            for pid in all_pids()
            if EXECUTOR_CLASS in cmdline(pid) and alive(pid) and any(_is_under(cwd(pid), s) for s in scopes)
        )

    def wait_for_executors(self, count: int, timeout: float = STARTUP_TIMEOUT, app_id: str | None = None) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.executor_pids(app_id)
            if len(pids) >= count:
                return pids
            time.sleep(0.2)
        raise ClusterError(f"fewer than {count} executors after {timeout:.0f} s")

    def stray_pids(self) -> list[int]:
        """Executors and their Python workers still running in this cluster's work dir (a shell that merely
        `cd`ed there is not one of them)."""
        return sorted(
            pid
            for pid in all_pids()
            if pid != os.getpid()
            and _is_under(cwd(pid), self.work_dir)
            and any(marker in cmdline(pid) for marker in (EXECUTOR_CLASS, "pyspark.daemon", "pyspark.worker"))
        )

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the workers (they stop their executors), then the master; SIGKILL whatever is left."""
        _terminate(self.workers, timeout)
        if self.master is not None:
            _terminate([self.master], timeout)
        # Executors outlive a worker that was SIGKILLed, and Python workers outlive a killed executor.
        strays = self.stray_pids()
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        _wait_gone(strays, timeout / 2)
        for pid in self.stray_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(strays, timeout / 2)


def _terminate(processes: list[subprocess.Popen[bytes]], timeout: float) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_for_line(process: subprocess.Popen[bytes], log: Path, pattern: re.Pattern[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pattern.search(log.read_text(errors="replace") if log.exists() else ""):
            return
        if process.poll() is not None:
            raise ClusterError(f"{log.stem} exited with code {process.returncode}:\n{_tail(log)}")
        time.sleep(0.2)
    raise ClusterError(f"{log.stem} not ready after {timeout:.0f} s:\n{_tail(log)}")


def cluster_env(root: Path, quick_jvm: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(spark_home()),
        # Workers and executors must run this interpreter, which has pyarrow and curate (pitfall P1).
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_LOG_DIR=str(root / "logs"),
        SPARK_PID_DIR=str(root / "pids"),
        SPARK_LOCAL_DIRS=str(root / "local"),
        # Master and worker JVMs only route messages: the 1 GB default heap is wasted on a small machine.
        SPARK_DAEMON_MEMORY=os.environ.get("SPARK_DAEMON_MEMORY", "512m"),
        # They never run long enough for the C2 compiler to pay off; on a busy 2-core machine its compile
        # threads made startup 2.5x slower (40 s against 100 s for a master and two workers).
        SPARK_DAEMON_JAVA_OPTS=os.environ.get("SPARK_DAEMON_JAVA_OPTS", QUICK_JVM),
        SPARK_LAUNCHER_OPTS=os.environ.get("SPARK_LAUNCHER_OPTS", QUICK_JVM),
    )
    if quick_jvm:
        # Every JVM started with this environment: the executors (they inherit the worker's) and a driver
        # the caller starts with `cluster.env`. Test jobs are seconds long; JIT work only costs CPU there.
        env["JAVA_TOOL_OPTIONS"] = QUICK_JVM
    # Spark 4 supports Java 17 and 21; a newer JDK earlier on PATH would be picked up otherwise.
    if "JAVA_HOME" not in os.environ and os.path.isdir(JAVA_17):
        env["JAVA_HOME"] = JAVA_17
    return env


def _launch(cluster: StandaloneCluster, name: str, arguments: list[str]) -> subprocess.Popen[bytes]:
    """One daemon JVM via bin/spark-class (which execs java), its output in logs/<name>.log."""
    with open(cluster.log_dir / f"{name}.log", "wb") as out:
        return subprocess.Popen(
            [str(spark_home() / "bin" / "spark-class"), *arguments],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=cluster.env,
            cwd=cluster.root,
        )


@contextlib.contextmanager
def standalone_cluster(
    workers: int = 2,
    cores: int = 1,
    memory: str = "2g",
    work_dir: str | os.PathLike[str] | None = None,
    timeout: float = STARTUP_TIMEOUT,
    quick_jvm: bool = False,
) -> Iterator[StandaloneCluster]:
    """Start a master and `workers` workers on 127.0.0.1; stop exactly those processes on exit.

    Each worker offers `cores` cores and `memory` to executors, and `cluster.spark_conf` sizes executors to
    match. `quick_jvm` runs every JVM of the cluster (executors included) with the client compiler only:
    right for tests, wrong for throughput measurements.
    """
    owned_root = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="curate-cluster-") if work_dir is None else work_dir).resolve()
    for sub in ("logs", "work", "local", "pids"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    env = cluster_env(root, quick_jvm)
    port = free_port()
    cluster = StandaloneCluster(root=root, master_url=f"spark://127.0.0.1:{port}", env=env, cores=cores, memory=memory)
    # A test runner killed outright skips `finally`; atexit still covers a normal interpreter exit.
    atexit.register(cluster.stop)
    try:
        cluster.master = _launch(
            cluster,
            "master",
            [MASTER_CLASS, "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(free_port())],
        )
        _wait_for_line(cluster.master, cluster.log_dir / "master.log", MASTER_READY, timeout)
        for index in range(workers):
            worker_dir = cluster.work_dir / f"worker-{index}"
            worker_dir.mkdir(exist_ok=True)
            arguments = [WORKER_CLASS, cluster.master_url, "--host", "127.0.0.1", "--cores", str(cores)]
            arguments += ["--memory", memory, "--work-dir", str(worker_dir), "--webui-port", str(free_port())]
            cluster.workers.append(_launch(cluster, f"worker-{index}", arguments))
        for index, worker in enumerate(cluster.workers):
            _wait_for_line(worker, cluster.log_dir / f"worker-{index}.log", WORKER_READY, timeout)
        yield cluster
    finally:
        cluster.stop()
        atexit.unregister(cluster.stop)
        if owned_root:
            import shutil

            shutil.rmtree(root, ignore_errors=True)
