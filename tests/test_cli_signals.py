"""A closed pipe and Ctrl-C end the ``xlm`` command without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import xlm_core.cli.data as cli_data
from xlm_core.cli import INTERRUPTED, main

REPO = Path(__file__).resolve().parents[1]


def _script(tmp_path: Path, body: str) -> Path:
    """A script that runs ``xlm data check`` with ``_check`` replaced by ``body`` (indented code)."""
    script = tmp_path / "cmd.py"
    script.write_text(
        "import sys, time\n"
        "import xlm_core.cli.data as d\n"
        "def replaced(args):\n" + body +
        "d._check = replaced\n"
        "from xlm_core.cli import main\n"
        "sys.exit(main(['data', 'check', 'hand', '/nowhere']))\n")
    return script


@pytest.fixture(autouse=True)
def _sigint_as_at_a_terminal():
    """Children get Ctrl-C as at a terminal. A test run started in the background of a
    non-interactive shell has SIGINT ignored, children inherit that, and Python then never
    raises KeyboardInterrupt; a handled signal is reset to the default in a child."""
    import signal

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def _start(script: Path) -> subprocess.Popen:
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(REPO)}
    env.pop("PYTHONUNBUFFERED", None)  # stdout into a pipe is block-buffered, as for a user
    return subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=REPO)


def test_closed_pipe_ends_quietly(tmp_path):
    """``xlm ... | head -5``: far more output than a pipe holds, the reader leaves early."""
    proc = _start(_script(tmp_path, "    for i in range(200000):\n        print('row', i)\n"))
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head` does after its lines
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert first == b"row 0\n"
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert code == 141


def test_closed_pipe_before_the_last_flush(tmp_path):
    """Output still buffered when the command returns, its reader already gone."""
    proc = _start(_script(tmp_path, "    print('one short line')\n    time.sleep(1.0)\n"))
    proc.stdout.close()  # the reader leaves before anything was flushed
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert code == 141


def test_closed_pipe_on_real_data_check(hand_root):
    """The real command on the real hand sample, its reader gone after 20 bytes."""
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "xlm_core.cli", "data", "check", "hand", str(hand_root),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    first = proc.stdout.read(20)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert first.startswith(b"{")
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert code in (0, 141)  # 0: the report fitted the pipe before it closed


def test_broken_pipe_in_process_returns_141(monkeypatch, capsys):
    def writes_to_closed_pipe(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(cli_data, "_check", writes_to_closed_pipe)
    monkeypatch.setattr("xlm_core.cli._silence_stdout", lambda: None)  # pytest owns stdout here
    assert main(["data", "check", "hand", "/nowhere"]) == 141
    assert "Traceback" not in capsys.readouterr().err


def test_ctrl_c_prints_one_line_with_the_resume_hint(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_data, "_check", interrupted)
    assert main(["data", "check", "hand", "/nowhere"]) == 130
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [INTERRUPTED] == ["xlm: interrupted; run the same command again to resume"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_real_sigint_during_a_command(tmp_path):
    """SIGINT to a running ``xlm`` process: the one line, status 130, no traceback."""
    import signal
    import time

    proc = _start(_script(tmp_path, "    print('started', flush=True)\n    time.sleep(60)\n"))
    assert proc.stdout.readline().strip() == b"started"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    assert code == 130
    assert "Traceback" not in err and INTERRUPTED in err, err


@pytest.mark.slow
def test_ctrl_c_during_a_study_stops_its_kernels_in_one_line(tmp_path):
    """Ctrl-C on ``xlm study run`` while a run notebook trains: one line with the resume hint,
    no traceback (the kernel's included), no kernel left running, and the same command resumes."""
    import signal
    import time

    import psutil

    results = tmp_path / "r"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "XLM_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "xlm_core.cli", "study", "run", "ci", "--results", str(results),
           "--no-aggregate"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO,
                            start_new_session=True)  # its own group: a terminal's Ctrl-C reaches it all

    def children(pid: int) -> list[int]:
        try:
            return [child.pid for child in psutil.Process(pid).children()]
        except psutil.NoSuchProcess:
            return []

    def running(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + 180
    kernels: list[int] = []
    while time.monotonic() < deadline and not kernels:
        time.sleep(0.5)
        kernels = children(proc.pid)
    assert kernels, "no run notebook started"
    time.sleep(3)  # inside the notebook now
    os.killpg(proc.pid, signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    text = err.decode()
    assert INTERRUPTED in text and "Traceback" not in text and "zmq" not in text.lower(), text
    time.sleep(2)
    alive = [pid for pid in kernels if running(pid)]
    assert not alive, f"processes of the study outlived it: {alive}"


def test_stop_child_processes_signals_each_child_and_the_group_it_leads(tmp_path):
    """What Ctrl-C does to a study's kernels, in a process of its own (here it would also hit
    whatever the test session started): a plain child and a session leader (a kernel) with a
    child of its own (a data-loader worker) all get the signal."""
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text("import subprocess, sys, time\n"
                       "if sys.argv[1:] == ['lead']:\n"
                       "    subprocess.Popen([sys.executable, __file__])\n"
                       "print(flush=True)\n"
                       "time.sleep(60)\n")
    script = tmp_path / "stop.py"
    script.write_text("import signal, subprocess, sys\n"
                      "import psutil\n"
                      "from xlm_core.study.executors import stop_child_processes\n"
                      f"plain = subprocess.Popen([sys.executable, {str(sleeper)!r}], stdout=subprocess.PIPE)\n"
                      f"leader = subprocess.Popen([sys.executable, {str(sleeper)!r}, 'lead'],\n"
                      "                          stdout=subprocess.PIPE, start_new_session=True)\n"
                      "plain.stdout.readline(), leader.stdout.readline()\n"
                      "worker = psutil.Process(leader.pid).children()\n"
                      "pids = stop_child_processes(signal.SIGTERM)\n"
                      "_, alive = psutil.wait_procs(worker, timeout=10)\n"
                      "print(pids == sorted([plain.pid, leader.pid]), plain.wait(10), leader.wait(10),\n"
                      "      len(worker), len(alive))\n")
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "-15", "-15", "1", "0"], out.stdout
