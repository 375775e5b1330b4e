"""Faults the runner must survive, each driven for real: a killed, stopped or spinning CPU, signals to
the runner, a /dev/shm too small or read-only, resource limits, and two runs at once."""

from __future__ import annotations

import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import psutil
import pytest

from emu.harness.testbed import Testbed
from emu.kernel.cpu import Cpu
from emu.machine.irq import IpiTimeout, ipi_function
from emu.machine.layout import C_CSD_WAIT
from emu.machine.shm import PREFIX, SHM_DIR, sweep_stale
from tests.conftest import segments_of
from tests.procs import CMD, assert_nothing_left, poll, semaphores, start, stress, wait_for_cpus, wait_for_run

SPIN = ipi_function("test_spin_target")  # registered before the CPUs fork


# -- CPU processes failing ------------------------------------------------------------------


def test_a_killed_cpu_is_noticed_at_once_and_reported_as_died() -> None:
    sems = semaphores()
    # a run of 600 s that ends within the communicate's 120 s ended because the death was noticed,
    # not because its time was up: no bound on how fast this host notices
    # no host is refused a 600 s run, and a death is a death whenever it lands: the same outcome on any host
    p, proc = start("--cpus", "4", "--duration", "600", "--seed", "1")
    kids = wait_for_cpus(proc, 4)
    os.kill(kids[2].pid, signal.SIGKILL)
    try:
        out, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("the runner did not notice a killed CPU: the run went on") from None
    assert p.returncode == 3, (out, err)
    assert out.startswith("HARNESS FAILURE: cpu 2 died (exit status -9)") and "harness failure: cpu 2 died (exit status -9)" in out
    assert "context_switches" in out  # the report still carries the counters it had
    assert_nothing_left(p.pid, kids, sems)


@pytest.mark.race  # a live CPU process the host starves for the watchdog's second would be named first: the host's
@pytest.mark.timeout(600)
def test_a_stopped_cpu_is_reported_by_the_watchdog() -> None:
    sems = semaphores()
    p, proc = start("--cpus", "3", "--duration", "60", "--watchdog", "1", "--ipi-timeout", "60")
    kids = wait_for_cpus(proc, 3)
    wait_for_run(proc)
    os.kill(kids[1].pid, signal.SIGSTOP)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 3, (out, err)
    line = next(x for x in out.splitlines() if "harness failure" in x)
    assert "watchdog: cpu 1 stalled for" in line and "(soft lockup): process stopped, running task" in line, line
    assert "active_mm" in line and "cpu state" in line
    assert_nothing_left(p.pid, kids, sems)  # the stopped CPU got SIGKILL: SIGTERM would wait for SIGCONT


FUTEX = {"x86_64": "202", "aarch64": "98"}.get(platform.machine(), "")  # futex(2)'s number in /proc/PID/syscall


def _idle_on_doorbell(pid: int) -> bool:
    """In the idle wait: a futex wait with a timeout (the doorbell semaphore). A CPU blocked on a
    contended atomic's lock waits on a futex too, but without a timeout."""
    try:
        nr, *args = Path(f"/proc/{pid}/syscall").read_text().split()
    except (OSError, ValueError):
        return False
    return nr == FUTEX and len(args) > 3 and args[3] != "0x0"


@pytest.mark.race  # whether the stop lands on an idle CPU is a race between the host's processes
@pytest.mark.timeout(600)
@pytest.mark.skipif(not FUTEX, reason=f"futex's syscall number on {platform.machine()} is not in FUTEX")
def test_an_ipi_to_a_stopped_cpu_is_reported_lost_after_a_bounded_wait() -> None:
    """The senders give up after --ipi-timeout and the report names the lost IPI and its stopped
    target. A stop that lands while the CPU holds an atomic's lock blocks the others on the lock
    instead (the watchdog then reports the stopped CPU): try again, a few times at most. The
    moment the stop lands is the host's to decide, so this runs in the race stage."""
    # shoot-lazies with --shoot-all IPIs every online CPU at each free, and waits for them; no
    # migration, or the load drifts onto the stopped CPU's runqueue and the others stop freeing mms
    args = (
        "--cpus",
        "3",
        "--duration",
        "60",
        "--strategy",
        "shoot-lazies",
        "--shoot-all",
        "--watchdog",
        "4",
        "--ipi-timeout",
        "0.5",
        "--p-migrate",
        "0",
    )
    lines = []
    for _ in range(4):
        sems = semaphores()
        p, proc = start(*args)
        try:
            kids = wait_for_cpus(proc, 3)
            wait_for_run(proc)
            poll(partial(_idle_on_doorbell, kids[1].pid), 10, "cpu 1 to sit idle on its doorbell (holding no lock)")
        except AssertionError:
            p.terminate()  # a 60 s run: do not leave it behind
            p.communicate(timeout=30)
            raise
        os.kill(kids[1].pid, signal.SIGSTOP)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 3, (out, err)
        assert_nothing_left(p.pid, kids, sems)
        lines.append(next(x for x in out.splitlines() if "harness failure" in x))
        assert "cpu 1 stalled" in lines[-1] and "process stopped, running task" in lines[-1], lines[-1]
        if "lost an IPI" in lines[-1]:
            break
    m = re.search(r"cpu [02] lost an IPI: \w+ to cpu 1 not acknowledged after (\d+\.\d)s; cpu 1 stalled: process stopped", lines[-1])
    assert m, lines
    # the sender gives up once it has waited --ipi-timeout; a loaded host may deschedule it past that
    assert float(m.group(1)) >= 0.5, lines


def test_an_ipi_to_a_cpu_spinning_with_interrupts_off_times_out() -> None:
    """A CPU stuck in a loop with interrupts masked (a hard lockup) never acknowledges: the sender
    gives up after its timeout, and while it waits it says whom it waits for (the watchdog's chain)."""
    with Testbed(cpus=2) as tb:
        release, seen_waiter, masked = tb.scratch(0), tb.scratch(1), tb.scratch(2)

        def spinner(cpu: Cpu) -> int:
            cpu.irq.handlers[SPIN] = lambda arg: None
            cpu.irq.local_irq_disable()
            cpu.w[masked] = 1
            waiting = cpu.layout.cpu(1) + C_CSD_WAIT
            while not cpu.w[release]:
                if cpu.w[waiting] == 1 + cpu.cpu:
                    cpu.w[seen_waiter] = 1
            cpu.irq.local_irq_enable()
            return 0

        def sender(cpu: Cpu) -> tuple[int, float]:
            cpu.irq.ack_timeout = 0.5
            while not cpu.w[masked]:
                pass
            try:
                cpu.irq.smp_call_function_single(0, SPIN, 0, wait=True)
                return (-1, 0.0)
            except IpiTimeout as e:
                return (e.target, e.waited)
            finally:
                cpu.w[release] = 1

        # the target never acknowledges: returning at all is the sender giving up (a lower bound
        # on its wait is the code's; no upper bound on how fast this host gets there)
        (_, (target, waited)) = tb.run([spinner, sender], timeout=60)
        assert target == 0 and waited >= 0.5
        assert tb.words[seen_waiter] == 1
        assert tb.words[tb.layout.cpu(1) + C_CSD_WAIT] == 0  # cleared once the sender gave up


# -- signals to the runner ------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_runner_stops_cleanly_and_still_reports(sig: signal.Signals) -> None:
    sems = semaphores()
    # no host is refused a 60 s run, and refcount is clean wherever the signal lands: the same outcome on any host
    p, proc = start("--cpus", "4", "--duration", "60", "--seed", "1")
    kids = wait_for_cpus(proc, 4)
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == (130 if sig == signal.SIGINT else 0), err  # Ctrl-C: reported, then status 130
    assert out.startswith("CLEAN: ") and f"no violation (interrupted by {sig.name})" in out.splitlines()[0]
    assert "Traceback" not in err
    assert_nothing_left(p.pid, kids, sems)


def test_a_killed_runner_takes_its_cpus_along_and_its_segment_is_swept() -> None:
    sems = semaphores()
    # no host is refused a 60 s run, and the CPUs die with their runner whenever the kill lands: the same outcome on any host
    p, proc = start("--cpus", "3", "--duration", "60", "--seed", "1")
    kids = wait_for_cpus(proc, 3)
    p.kill()
    p.communicate(timeout=30)
    _, alive = psutil.wait_procs(kids, timeout=5)
    assert alive == [], "CPU processes outlived their runner (PR_SET_PDEATHSIG)"
    # SIGKILL leaves the segment (unless a concurrent test's run swept it already); the next run removes it
    r = stress("run", "--cpus", "1", "--sched", "random", "--steps", "2000", "--quiet")  # deterministic: clean on any host
    assert r.returncode == 0, r.stderr
    assert_nothing_left(p.pid, kids, sems)


def test_sweep_removes_only_segments_of_dead_runners() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Path(SHM_DIR) / f"{PREFIX}{dead.pid}_feedface"
    live = Path(SHM_DIR) / f"{PREFIX}{os.getpid()}_cafebabe"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    try:
        removed = sweep_stale()
        assert stale.name in removed and not stale.exists()
        assert live.exists()
    finally:
        live.unlink()
        stale.unlink(missing_ok=True)


# -- resources: /dev/shm and the process limits ----------------------------------------------

needs_userns = pytest.mark.skipif(
    shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode != 0,
    reason="needs unprivileged user and mount namespaces to give the run its own /dev/shm",
)


def _with_own_shm(mount_opts: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` with a private tmpfs over /dev/shm (a real small or read-only /dev/shm, seen by
    nobody else), then list what is left in it."""
    cmd = f"mount -t tmpfs -o {mount_opts} tmpfs /dev/shm && {script}; echo rc=$?; echo left=$(ls -A /dev/shm | tr '\\n' ' ')"
    r = subprocess.run(
        ["unshare", "-rm", "sh", "-c", cmd], capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent.parent
    )
    assert r.stdout.splitlines()[-1].strip() == "left=", f"left in /dev/shm: {r.stdout}"
    return r


def _stress_sh(*args: str) -> str:
    return " ".join([sys.executable, "-m", "stress", *args])


@needs_userns
@pytest.mark.parametrize("size", ["64k", "1m"])
def test_a_too_small_dev_shm_is_one_usage_error(size: str) -> None:
    r = _with_own_shm(f"size={size}", _stress_sh("run", "--cpus", "8", "--duration", "0.2", "--quiet"))
    assert "rc=2" in r.stdout, r
    (line,) = r.stderr.strip().splitlines()
    assert "--cpus 8: the run needs" in line and "MiB of /dev/shm and only" in line, line


@needs_userns
def test_a_read_only_dev_shm_is_one_clear_error() -> None:
    r = _with_own_shm("ro", _stress_sh("run", "--cpus", "2", "--duration", "0.2", "--quiet"))
    assert "rc=3" in r.stdout, r
    errors = [x for x in r.stderr.splitlines() if "error" in x]
    assert errors == ["stress: error: cannot create a 0.1 MiB segment in /dev/shm: Read-only file system"], r.stderr
    assert "Traceback" not in r.stderr


@needs_userns
def test_a_segment_larger_than_dev_shm_fails_cleanly_not_with_sigbus() -> None:
    """The preflight can race with other users of /dev/shm: the segment itself reserves its pages,
    so running out is ENOSPC at creation, never a SIGBUS at the first store to an unbacked page."""
    code = "from emu.machine.shm import Segment, SegmentError\ntry:\n    Segment(4 << 20)\nexcept SegmentError as e:\n    print(e)"
    r = _with_own_shm("size=1m", f"{sys.executable} -c '{code}'")
    assert "no room for a 4.0 MiB segment: No space left on device" in r.stdout and "rc=0" in r.stdout, r


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an ignored signal stays ignored across exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))


def test_a_segment_the_os_refuses_is_a_harness_error_with_nothing_left() -> None:
    """RLIMIT_FSIZE makes the kernel refuse the segment's ftruncate (EFBIG): a failure injected at
    the OS boundary, with the real /dev/shm."""
    before = set(os.listdir(SHM_DIR))
    args = [*CMD, "run", "--cpus", "4", "--duration", "0.2", "--quiet"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_limit_file_size)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 3, (out, err)
    assert err.strip().splitlines()[-1].startswith("stress: error: cannot create a ") and "File too large" in err
    assert segments_of(p.pid) == []
    poll(lambda: not {n for n in set(os.listdir(SHM_DIR)) - before if n.startswith(("sem.", f"{PREFIX}{p.pid}_"))}, 5, "a clean /dev/shm")


def _limit_processes() -> None:
    mine = sum(1 for q in psutil.process_iter(["uids"]) if q.info["uids"] and q.info["uids"].real == os.getuid())
    resource.setrlimit(resource.RLIMIT_NPROC, (mine + 20, resource.getrlimit(resource.RLIMIT_NPROC)[1]))


def test_cpus_beyond_the_process_limit_is_a_usage_error() -> None:
    args = [*CMD, "run", "--cpus", "64", "--duration", "0.2"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, preexec_fn=_limit_processes)
    assert p.returncode == 2, p.stderr
    (line,) = p.stderr.strip().splitlines()
    assert "--cpus 64 is more than this machine can hold (at most" in line


# -- two runs at once ------------------------------------------------------------------------


def test_two_runs_at_once_do_not_interfere(tmp_path: Path) -> None:
    sems = semaphores()
    # 60 s runs, ended by SIGTERM once seen side by side: no host is refused them, and a clean drained
    # report after the signal is the same outcome on any host
    runs = [start("--cpus", "2", "--duration", "60", "--seed", str(s), "--quiet", "--json", str(tmp_path / f"{s}.json")) for s in (11, 22)]
    kids = [wait_for_cpus(proc, 2) for _, proc in runs]
    names = [segments_of(p.pid) for p, _ in runs]
    assert all(len(n) == 1 for n in names) and names[0] != names[1]
    # a third run's sweep sees two live runners and removes neither segment
    assert not any(n.startswith(PREFIX) for n in sweep_stale())
    for _, proc in runs:
        wait_for_run(proc)  # a signal during the boot ends a run undrained: on a loaded host the boot takes seconds
    for p, _ in runs:
        p.terminate()
    for (p, _), s in zip(runs, (11, 22), strict=True):
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        report = json.loads((tmp_path / f"{s}.json").read_text())
        assert report["config"]["seed"] == s and report["verdict"] == "clean" and report["harness"]["drained"]
        assert report["harness"]["interrupted"] == "SIGTERM"  # each ended by its own signal, not by the other run
    for (p, _), k in zip(runs, kids, strict=True):
        assert_nothing_left(p.pid, k, sems)
