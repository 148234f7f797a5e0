"""bench/run_all.py with stand-in benchmark scripts: pass, fail, missing, time limit."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run_all", REPO / "bench" / "run_all.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def run_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    mod = load()
    monkeypatch.setattr(mod, "BENCH", tmp_path)
    monkeypatch.setattr(mod, "KILL_GRACE_SECONDS", 2.0)
    (tmp_path / "ok.py").write_text(
        "import pathlib, sys\n"
        f"pathlib.Path({str(tmp_path / 'ok.args')!r}).write_text(' '.join(sys.argv[1:]))\n"
    )
    (tmp_path / "bad.py").write_text("import sys\nsys.exit(3)\n")
    # a benchmark that hangs, with a child process that would outlive a plain kill
    (tmp_path / "hang.py").write_text(
        "import pathlib, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"pathlib.Path({str(tmp_path / 'hang.pids')!r}).write_text("
        "f'{child.pid}')\n"
        "time.sleep(120)\n"
    )
    monkeypatch.setattr(
        mod,
        "BENCHMARKS",
        (
            mod.Benchmark("ok", "ok.py", 60, "passes"),
            mod.Benchmark("bad", "bad.py", 60, "exits 3"),
            mod.Benchmark("missing", "missing.py", 60, "not there"),
            mod.Benchmark("hang", "hang.py", 1, "exceeds its limit"),
        ),
    )
    return mod


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead


def test_each_result_is_reported(
    run_all: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_all.main(["--no-sandbox-up", "--no-append"])
    out, err = capsys.readouterr()
    assert code == 1
    assert (tmp_path / "ok.args").read_text() == "--no-append"
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in out.splitlines()
        if line.startswith("| ") and not line.startswith(("| benchmark", "| ---"))
    }
    assert rows == {"ok": "passed", "bad": "failed", "missing": "skipped", "hang": "timeout"}
    assert "run_all: FAILED: bad, hang" in err
    # the hanging benchmark's child was stopped with it (process group, by pid)
    child = int((tmp_path / "hang.pids").read_text())
    deadline = time.monotonic() + 15
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(child)


def test_only_passing_is_exit_0(run_all: ModuleType) -> None:
    assert run_all.main(["--no-sandbox-up", "--only", "ok", "missing"]) == 0


def test_list_runs_nothing(
    run_all: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_all.main(["--list", "--skip", "hang", "--timeout-scale", "2"]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "ok.args").exists()
    assert "ok.py" in out and "limit 120 s" in out and "hang" not in out
    assert "[not present: skipped]" in out


def test_unknown_names_are_refused(run_all: ModuleType) -> None:
    with pytest.raises(SystemExit, match=r"unknown benchmark.*nope; known: bad, hang, missing, ok"):
        run_all.main(["--list", "--only", "nope"])


def test_the_real_list_names_existing_scripts() -> None:
    mod = load()
    assert [b.name for b in mod.BENCHMARKS][:3] == [
        "worker_throughput",
        "dlq_recovery",
        "deploy_times",
    ]
    assert all(b.path.is_file() for b in mod.BENCHMARKS if b.name != "deploy_times")


def test_latency_aws_runs_only_the_modelled_benchmarks_with_the_flag(
    run_all: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "modelled.py").write_text(
        "import os, pathlib, sys\n"
        f"pathlib.Path({str(tmp_path / 'modelled.args')!r}).write_text("
        "' '.join(sys.argv[1:]) + ' BENCH_LATENCY=' + os.environ['BENCH_LATENCY'])\n"
    )
    monkeypatch.setattr(
        run_all,
        "BENCHMARKS",
        (
            run_all.Benchmark("modelled", "modelled.py", 60, "has a model", aws_timeout=90),
            run_all.Benchmark("ok", "ok.py", 60, "loopback only"),
        ),
    )
    monkeypatch.setenv("BENCH_LATENCY", "aws")
    assert run_all.main(["--no-sandbox-up", "--no-append"]) == 0
    out = capsys.readouterr().out
    args = (tmp_path / "modelled.args").read_text()
    assert args == "--latency aws --no-append BENCH_LATENCY=aws"
    assert not (tmp_path / "ok.args").exists()
    assert "| ok | skipped | 0 | no latency model for mode aws |" in out
    assert "(limit 90 s)" in out
    # the flag wins over the environment; mode none runs both, the child is told so
    assert run_all.main(["--no-sandbox-up", "--latency", "none"]) == 0
    assert (tmp_path / "modelled.args").read_text() == " BENCH_LATENCY=none"
    assert (tmp_path / "ok.args").read_text() == ""


def test_list_shows_the_mode_and_its_limits(
    run_all: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        run_all,
        "BENCHMARKS",
        (
            run_all.Benchmark("modelled", "ok.py", 60, "has a model", aws_timeout=90),
            run_all.Benchmark("plain", "ok.py", 60, "loopback only"),
        ),
    )
    assert run_all.main(["--list", "--latency", "aws", "--timeout-scale", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("latency mode: aws\n")
    assert "ok.py --latency aws\n    limit 180 s; has a model\n" in out
    assert "limit 120 s; loopback only  [no latency model for mode aws: skipped]" in out


def test_the_real_worker_and_recovery_benchmarks_have_a_latency_model() -> None:
    mod = load()
    modelled = {b.name for b in mod.BENCHMARKS if b.aws_timeout}
    assert modelled == {"worker_throughput", "dlq_recovery"}
