"""Several processes in lock-step: 2 gloo processes on the CPU, started by torchrun."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from wordgpt.runs import checkpoint

from .helpers import make_trainer

pytestmark = [
    pytest.mark.slow,  # end to end: not in make test-fast
    pytest.mark.skipif(os.environ.get("WORDGPT_SKIP_DDP") == "1", reason="asked to skip"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args, timeout=240) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        *map(str, args),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[:3000]
    return r


@pytest.fixture(scope="module")
def reports(word_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    torchrun(Path(__file__).parent / "ddp_script.py", word_data, out)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def test_a_time_budgeted_run_stays_in_lock_step(reports):
    """Rank 1's clock runs ten times faster than rank 0's, and rank 0 sleeps at every
    evaluation: only rank 0's clock may count, or the learning rates drift and the ranks stop
    at other steps (and the first to stop hangs the other in the gradient all-reduce)."""
    a, b = reports
    assert a["stopped"] == b["stopped"] == "time_budget"
    # 2.5 s at rank 0's 0.125 s a step, less its evaluations (0.125 s each, every 5 steps)
    assert a["budget_step"] == b["budget_step"] == 16
    assert a["budget_elapsed"] == b["budget_elapsed"] == 2.5
    assert torch.equal(a["lrs"], b["lrs"])
    for k in a["params"]:
        assert torch.equal(a["params"][k], b["params"][k]), k  # bit-identical replicas


def test_ranks_draw_different_batches(reports):
    assert not torch.equal(reports[0]["first_x"], reports[1]["first_x"])


def test_a_stop_on_one_rank_stops_every_rank_at_the_same_step(reports):
    assert reports[0]["stop_step"] == reports[1]["stop_step"] == 5


def test_two_ranks_of_half_a_batch_equal_one_process_with_the_whole(reports, word_data):
    """Stated tolerance: 1e-6 absolute, 1e-4 relative (fp32, other summation order)."""
    one = make_trainer(word_data, batch_size=8)
    loss = one.accumulate()
    assert (reports[0]["loss"] + reports[1]["loss"]) / 2 == pytest.approx(loss, rel=1e-5)
    for n, p in one.model.named_parameters():
        for r in reports:
            torch.testing.assert_close(r["grads"][n], p.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_sharded_evaluation_equals_one_process(reports, word_data):
    one = make_trainer(word_data, batch_size=4).estimate_loss()
    for r in reports:
        assert r["eval"] == pytest.approx(one, rel=1e-6)


def _train(data, out, *extra):
    return torchrun(
        "-m",
        "wordgpt.cli",
        "train",
        "--data",
        data,
        "--out",
        out,
        "--preset",
        "tiny",
        "--dtype",
        "fp32",
        "--no-progress",
        "--eval-interval",
        "10",
        "--no-tensorboard",
        *extra,
    )


def test_ddp_resume_is_bit_exact(word_data, tmp_path):
    """12 steps, then a resume to 30, against 30 straight. A constant learning rate, so
    that stopping at max_iters 12 does not change the schedule of the first 12 steps (a
    signal-stopped resume is tested in test_train.py)."""
    const = ("--min-lr-ratio", "1", "--warmup", "0")
    _train(word_data, tmp_path / "straight", "--max-iters", "30", *const)
    _train(word_data, tmp_path / "cut", "--max-iters", "12", *const)
    r = _train(word_data, tmp_path / "cut", "--resume", "--max-iters", "30")
    assert "resumed" in r.stdout
    a = checkpoint.read(tmp_path / "straight" / "last.pt")
    b = checkpoint.read(tmp_path / "cut" / "last.pt")
    assert a["step"] == b["step"] == 30 and a["tokens"] == b["tokens"] == 30 * 8 * 32 * 2
    assert b["world_size"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_resume_with_another_world_size_says_what_it_does(word_data, tmp_path, capsys):
    from wordgpt.use.train_run import train

    _train(word_data, tmp_path / "run", "--max-iters", "6")
    r = train(word_data, tmp_path / "run", resume=True, max_iters=8, progress=False,
              tensorboard=False)  # fmt: skip
    assert r.step == 8
    said = " ".join(capsys.readouterr().out.split())
    assert "world size 1 (was 2)" in said and "global batch is now 8 sequences" in said


# ------------------------------------------------------------------------ two nodes


def two_nodes(logs: Path, *args, timeout=240) -> list[str]:
    """Two ``torchrun`` agents on this machine, one process each, that meet by c10d
    rendezvous as the agents of two nodes of a cluster do (c10d numbers the nodes in the
    order they arrive; ``--node-rank`` is what the static rendezvous would use). Returns
    each agent's output."""
    agents, files = start_two_nodes(logs, *args)
    try:
        codes = [a.wait(timeout=timeout) for a in agents]
    finally:
        stop(agents)
    outs = [log.read_text() for log in files]
    assert codes == [0, 0], "\n".join(o[-2000:] for o in outs)
    return outs


def stop(agents: list[subprocess.Popen]) -> None:
    """An agent left waiting for the other goes, with its worker."""
    for a in agents:
        if a.poll() is None:
            os.killpg(a.pid, 9)
            a.wait()


def start_two_nodes(logs: Path, *args) -> tuple[list[subprocess.Popen], list[Path]]:
    """The agents of :func:`two_nodes`, started, and the files their output goes to."""
    flags = (
        f"--nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint 127.0.0.1:"
        f"{free_port()} --rdzv-id wordgpt-test --local-addr 127.0.0.1 --max-restarts 0"
    ).split()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    agents, files = [], [logs / f"node{n}.log" for n in (0, 1)]
    for n, log in enumerate(files):
        cmd = [sys.executable, "-m", "torch.distributed.run", *flags, "--node-rank", str(n)]
        with open(log, "w") as f:  # files, not pipes: no agent waits on a full pipe
            agents.append(
                subprocess.Popen(
                    [*cmd, *map(str, args)],
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            )
    return agents, files


def test_two_nodes_train_the_tiny_preset_into_bit_identical_replicas(word_data, tmp_path):
    two_nodes(tmp_path, Path(__file__).parent / "multinode_script.py", word_data, tmp_path)
    a, b = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert {a["node"], b["node"]} == {0, 1}  # two nodes, one process on each
    assert a["local_rank"] == b["local_rank"] == 0 and a["local_world"] == b["local_world"] == 1
    assert a["world"] == b["world"] == 2 and a["rank"] != b["rank"]
    assert a["stopped"] == b["stopped"] == "max_iters" and a["step"] == b["step"] == 30
    assert torch.equal(a["start"], b["start"])
    assert not torch.equal(a["params"]["h.0.attn.qkv.weight"], a["start"])  # it trained
    for k in a["params"]:
        assert torch.equal(a["params"][k], b["params"][k]), k  # bit-identical replicas


def test_the_train_command_runs_across_two_nodes(word_data, tmp_path):
    out = tmp_path / "run"
    flags = "--preset tiny --dtype fp32 --no-progress --no-tensorboard --max-iters 20"
    cmd = ["-m", "wordgpt.cli", "train", "--data", word_data, "--out", out, *flags.split()]
    two_nodes(tmp_path, *cmd, "--eval-interval", "10")
    ck = checkpoint.read(out / "last.pt")
    assert ck["step"] == 20 and ck["world_size"] == 2 and ck["tokens"] == 20 * 8 * 32 * 2


def worker_of(agent: subprocess.Popen) -> int:
    """The pid of the process a torchrun agent started (its one worker)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that ended meanwhile
            continue
        if int(fields[1]) == agent.pid:  # the parent's pid
            return int(stat.parent.name)
    raise AssertionError(f"agent {agent.pid} has no worker")


def test_a_process_killed_leaves_the_other_one_line_not_a_traceback(word_data, tmp_path):
    """kill -9 of one process of a run (one node's worker): the other's next collective
    fails, and it says so in one line; no traceback of wordgpt's code."""
    import re
    import time

    out = tmp_path / "run"
    flags = "--preset tiny --dtype fp32 --no-progress --no-tensorboard --max-iters 100000"
    cmd = ["-m", "wordgpt.cli", "train", "--data", word_data, "--out", out, *flags.split()]
    agents, files = start_two_nodes(tmp_path, *cmd, "--eval-interval", "10")
    try:
        deadline = time.time() + 120
        while not (out / "last.pt").is_file():  # training has begun: a checkpoint is saved
            assert time.time() < deadline and all(a.poll() is None for a in agents)
            time.sleep(0.1)
        os.kill(worker_of(agents[1]), 9)
        agents[0].wait(timeout=120)
    finally:
        stop(agents)
    log = files[0].read_text()
    assert "error: another process of this run stopped" in log, log[-3000:]
    assert not re.search(r'File ".*wordgpt/', log), log[-3000:]
