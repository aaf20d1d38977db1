"""Every user mistake ends in one `error: ...` line naming the input, exit code 2, and no traceback.

Each case runs the real `curate` executable in a subprocess. All of them fail before a JVM starts (arguments,
paths and files are validated first), which keeps the table fast; the Spark master that nobody answers is
refused by a TCP check of the master's address.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

CURATE = str(Path(sys.executable).with_name("curate"))
WARC = "cc-warc/resiliparse/warcfile.warc.gz"


@dataclass(frozen=True)
class Mistake:
    name: str
    # Arguments after `curate`, built from the case's scratch directory and the shared data directory.
    args: Callable[[Path, Path], list[str]]
    # A piece of the one error line: the input or option the user has to fix.
    names: Callable[[Path, Path], str]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _read_only_dir(tmp: Path) -> Path:
    if os.geteuid() == 0:
        # Root writes through permission bits; sysfs refuses new files even to root.
        return Path("/sys/kernel")
    path = tmp / "read-only"
    path.mkdir(exist_ok=True)
    path.chmod(0o555)
    return path


def _write_fixtures(tmp: Path) -> None:
    (tmp / "a-file").write_text("not a directory\n")
    (tmp / "bad-run").mkdir()
    (tmp / "bad-run" / "run.json").write_text("[]\n")
    (tmp / "source-stage").mkdir()
    (tmp / "model-0123.bin").write_bytes(b"not a real model, never loaded")
    (tmp / "model-0123.json").write_text('{"model_id": "model-0123"}\n')  # no "preprocess" section
    (tmp / "bad.cnxml").write_text("<document><content><para>an unclosed paragraph</content></document>\n")
    (tmp / "latin1.jsonl").write_bytes('{"text": "Théorème de Pythagore"}\n'.encode("latin-1"))
    (tmp / "negatives").mkdir()
    benchmarks = tmp / "benchmarks"
    benchmarks.mkdir()
    (benchmarks / "empty.jsonl").write_text("")
    (benchmarks / "short.jsonl").write_text('{"question": "2+2?", "answer": "4"}\n')
    for name in ("empty", "short"):
        (tmp / f"{name}.yaml").write_text(
            "benchmarks:\n"
            f"  - name: {name}_bench\n"
            f"    path: benchmarks/{name}.jsonl\n"
            "    id_field: null\n"
            "    question_fields: [question]\n"
            "    answer_fields: [answer]\n"
        )


def _decontaminate(tmp: Path, registry: str) -> list[str]:
    return [
        "decontaminate", "--out", str(tmp / "run"), "--source", str(tmp / "source-stage"),
        "--benchmarks", str(tmp / registry), "--data-root", str(tmp), "--local-runner",
    ]  # fmt: skip


PORT = _closed_port()
MISTAKES = [
    Mistake("unknown verb", lambda t, d: ["frobnicate"], lambda t, d: "frobnicate"),
    Mistake("unknown option", lambda t, d: ["ingest", "--bogus"], lambda t, d: "--bogus"),
    Mistake("missing required option", lambda t, d: ["ingest", "--input", str(d / WARC)], lambda t, d: "--out"),
    Mistake(
        "option value of the wrong type",
        lambda t, d: ["ingest", "-i", str(d / WARC), "-o", str(t / "run"), "--max-record-mb", "lots"],
        lambda t, d: "--max-record-mb",
    ),
    Mistake(
        "--set with a value of the wrong type",
        lambda t, d: ["dedup", "--out", str(t / "run"), "--set", "dedup.minhash.threshold=abc"],
        lambda t, d: "minhash.threshold",
    ),
    Mistake(
        "--set outside the verb's section",
        lambda t, d: ["dedup", "--out", str(t / "run"), "--set", "train.epoch=3"],
        lambda t, d: "train",
    ),
    Mistake(
        "--spark-conf without a value",
        lambda t, d: ["ingest", "--input", str(d / WARC), "--out", str(t / "run"), "--spark-conf", "spark.x"],
        lambda t, d: "spark.x",
    ),
    Mistake(
        "--out is a file",
        lambda t, d: ["ingest", "--input", str(d / WARC), "--out", str(t / "a-file")],
        lambda t, d: str(t / "a-file"),
    ),
    Mistake(
        "--out under a file",
        lambda t, d: ["ingest", "--input", str(d / WARC), "--out", str(t / "a-file" / "run")],
        lambda t, d: str(t / "a-file"),
    ),
    Mistake(
        "--out is read-only",
        lambda t, d: ["ingest", "--input", str(d / WARC), "--out", str(_read_only_dir(t))],
        lambda t, d: str(_read_only_dir(t)),
    ),
    Mistake(
        "--max-record-mb nan",
        lambda t, d: ["ingest", "--input", str(d / WARC), "--out", str(t / "run"), "--max-record-mb", "nan"],
        lambda t, d: "--max-record-mb",
    ),
    Mistake(
        "--max-record-mb inf",
        lambda t, d: ["ingest", "--input", str(d / WARC), "--out", str(t / "run"), "--max-record-mb", "inf"],
        lambda t, d: "--max-record-mb",
    ),
    Mistake(
        "--set ingest.record_timeout_s=0",
        lambda t, d: ["ingest", "-i", str(d / WARC), "-o", str(t / "run"), "--set", "ingest.record_timeout_s=0"],
        lambda t, d: "ingest.record_timeout_s",
    ),
    Mistake(
        "--set with a misspelt ingest key",
        lambda t, d: ["ingest", "-i", str(d / WARC), "-o", str(t / "run"), "--set", "ingest.record_timeout=5"],
        lambda t, d: "did you mean ingest.record_timeout_s?",
    ),
    Mistake(
        "a missing input next to an existing one",
        lambda t, d: ["ingest", "-i", str(d / WARC), "-i", str(t / "gone.warc.gz"), "--out", str(t / "run")],
        lambda t, d: str(t / "gone.warc.gz"),
    ),
    Mistake(
        "an input glob that matches nothing",
        lambda t, d: ["run", "--input", str(t / "*.warc.gz"), "--out", str(t / "run")],
        lambda t, d: "*.warc.gz",
    ),
    Mistake(
        "a Spark master nobody answers",
        lambda t, d: ["ingest", "-i", str(d / WARC), "-o", str(t / "run"), "--master", f"spark://127.0.0.1:{PORT}"],
        lambda t, d: f"127.0.0.1:{PORT}",
    ),
    Mistake(
        "report --out is a directory",
        lambda t, d: ["report", "--run", str(t / "source-stage"), "--out", str(t)],
        lambda t, d: str(t),
    ),
    Mistake("report of a missing run", lambda t, d: ["report", "--run", str(t / "nowhere")], lambda t, d: "nowhere"),
    Mistake("run.json holding a list", lambda t, d: ["report", "--run", str(t / "bad-run")], lambda t, d: "run.json"),
    Mistake(
        "export of a run whose run.json holds a list",
        lambda t, d: ["export", "--run", str(t / "bad-run"), "--out", str(t / "export")],
        lambda t, d: "run.json",
    ),
    Mistake(
        "a model whose .json lacks keys",
        lambda t, d: ["classify", "score", "--out", str(t / "run"), "--model", str(t / "model-0123.bin")],
        lambda t, d: "model-0123.json",
    ),
    Mistake(
        "a malformed CNXML seed file",
        lambda t, d: ["classify", "train", "-p", str(t / "bad.cnxml"), "-n", str(t / "negatives"), "-o", str(t / "m")],
        lambda t, d: "bad.cnxml",
    ),
    Mistake(
        "a seed file that is not UTF-8",
        lambda t, d: ["classify", "train", "-p", str(t / "latin1.jsonl"), "-n", str(t / "negatives"), "-o", str(t)],
        lambda t, d: "latin1.jsonl",
    ),
    Mistake("an empty benchmark file", lambda t, d: _decontaminate(t, "empty.yaml"), lambda t, d: "empty.jsonl"),
    Mistake(
        "a benchmark with 0 indexed items", lambda t, d: _decontaminate(t, "short.yaml"), lambda t, d: "short_bench"
    ),
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("mistakes")
    _write_fixtures(tmp)
    return tmp


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_one_line_exit_2_no_traceback(mistake: Mistake, scratch: Path, shared_data: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("CURATE_DEBUG", None)
    done = subprocess.run(
        [CURATE, *mistake.args(scratch, shared_data)], capture_output=True, text=True, timeout=60, env=env
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert mistake.names(scratch, shared_data) in lines[0]


def test_debug_shows_the_traceback(scratch: Path) -> None:
    done = subprocess.run(
        [CURATE, "--debug", "report", "--run", str(scratch / "bad-run")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0 and "Traceback" in done.stderr and "run.json" in done.stderr
