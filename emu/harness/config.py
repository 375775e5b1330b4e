"""What one run is: the machine, the scheme under test and the workload that drives it."""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import psutil

from emu.harness import perturbations
from emu.machine.layout import Layout
from emu.machine.memory_model import MEMORY_MODELS
from emu.machine.policies import sched_choices
from emu.workload.benchmarks import DRIVERS
from emu.workload.scripted import uses_hotplug


class ConfigError(ValueError):
    """A user mistake in the run's settings: reported as one line, exit status 2."""


# Rough per-CPU-process footprint after fork (private pages only), measured with psutil's uss.
_BYTES_PER_CPU = 12 * 1024 * 1024
MAX_CPUS = 1024


@dataclass
class Workload:
    """The knobs of the synthetic load; defaults keep several multi-threaded processes alive."""

    procs: int = 0  # live user processes to keep; 0 = derived from --cpus
    threads: int = 4  # threads per process
    kthreads: int = 2  # per-CPU kernel threads
    p_fork: float = 0.05  # per quantum, when below --procs
    p_exit: float = 0.02  # per user quantum: the thread exits
    p_block: float = 0.10  # per user quantum: the thread sleeps (the CPU may go lazy)
    p_migrate: float = 0.20  # per preemption or wake-up: the thread moves to another CPU
    p_kthread: float = 0.10  # per schedule: a per-CPU kernel thread wakes
    p_use_mm: float = 0.05  # per kernel-thread quantum: kthread_use_mm on a live mm
    sleep_us: int = 200  # mean sleep of a blocked thread
    p_munmap: float = 0.01  # per user quantum: unmap something, a TLB flush of the running mm
    p_free_tables: float = 0.1  # per munmap: page-table pages are freed too (a freed-tables flush)
    p_exec: float = 0.0005  # per user quantum: the task execs a new program (exec_mmap: a new mm)
    p_kernel_exec: float = 0.1  # per fork from a kernel context: its first thread starts in kernel_execve
    p_preempt: float = 0.2  # per preemption point of a kernel path (kthread_use_mm, exec_mmap): preempted there

    def live_procs(self, cpus: int) -> int:
        return self.procs or max(2, min(64, cpus))


@dataclass
class RunConfig:
    cpus: int = 4
    strategy: str = "refcount"
    mutant: str | None = None
    arch: str = "x86"
    duration: float = 3.0
    seed: int = 0
    workload: Workload = field(default_factory=Workload)
    shoot_all: bool = False  # shoot-lazies: IPI every online CPU, not the mask
    debug_check: bool = False  # shoot-lazies: do_check_lazy_tlb on every CPU at each free
    fix: str = ""  # comma list of the scheme's later fixes to apply (Strategy.FIXES)
    # architecture (emu.arch): each applies to the models named
    trim_timer: int = 1073  # powerpc: tlb_mm_cpumask_trim_timer, one flush in N trims mm_cpumask (1: every flush)
    x86_unlazy_on_flush: bool = False  # x86 models: a lazy CPU's flush IPI and leave_mm end its lazy use (2022 series, 20/23 and 21/23)
    x86_idle_leave_mm: bool = False  # x86 models: an idle CPU calls leave_mm (CPUIDLE_FLAG_TLB_FLUSHED states, e.g. ACPI C3)
    # perturbation (all off by default; each drawn from the seed)
    noise: float = 0.0  # probability of a delay at each scheme access / atomic
    stutter: bool = False  # all CPUs run, pause together, run
    shuffle: bool = False  # move CPU processes between the real cores
    hotplug: bool = False  # take random CPUs offline and back
    use_mm_bursts: bool = False  # now and then every kernel thread adopts an mm at once
    perturb: tuple[str, ...] = ()  # the perturbations (emu.harness.perturbations) that have no field of their own
    fail_fast: bool = False  # stop at the first violation
    memory_model: str = "sc"  # sc, or tso: a FIFO store buffer per CPU (emu.machine.memory_model)
    race_delay: float = 0.0  # per pass through a scheme's marked race window: chance to stall there
    watchdog: float = 10.0  # seconds without progress before a CPU is reported stalled
    ipi_timeout: float = 10.0  # seconds an IPI sender waits for the acknowledgement (csd lock timeout)
    # scheduling (emu.machine.detsched): free-running processes, or one CPU at a time by a seeded policy
    sched: str = "free"  # free, or a policy of emu.machine.policies (pct, random)
    steps: int = 100_000  # a deterministic mode's run phase, in scheduling points (its --duration)
    depth: int = 3  # pct: the bug depth it targets (depth - 1 priority change points)
    replay: str = ""  # a deterministic run's report or schedule file: follow its schedule
    # a benchmark-shaped load instead of the synthetic one (emu.workload.benchmarks), and its parameter
    benchmark: str = ""
    bench_tasks: int = 0  # will-it-scale's -t, hackbench's groups
    # a scripted load instead (emu.workload.scripted): the explorer's scenarios, nothing drawn at random
    script: str = ""

    @property
    def deterministic(self) -> bool:
        return self.sched != "free"

    def to_dict(self) -> dict[str, object]:
        d = dataclasses.asdict(self)
        if not self.benchmark:  # the synthetic load's reports stay as they were
            del d["benchmark"], d["bench_tasks"]
        if not self.script:
            del d["script"]
        if not self.perturb:  # so do those of the perturbations with a field of their own
            del d["perturb"]
        else:
            d["perturb"] = list(self.perturb)
        return d

    @property
    def perturbed(self) -> bool:
        """A perturbation asks CPUs to pause or go offline: they poll for it."""
        return any(k.pauses_cpus for k in perturbations.enabled(self)) or uses_hotplug(self.script)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> RunConfig:
        """A report's ``config`` back (ConfigError if it is not one)."""
        names = {f.name for f in dataclasses.fields(cls)}
        wl_names = {f.name for f in dataclasses.fields(Workload)}
        wl = d.get("workload")
        if not isinstance(wl, dict) or set(wl) - wl_names or set(d) - names:
            raise ConfigError("not a run's configuration (from another version of lazytlb?)")
        try:
            rest = {k: tuple(v) if k == "perturb" and isinstance(v, list) else v for k, v in d.items() if k != "workload"}
            return cls(**{**rest, "workload": Workload(**wl)})  # type: ignore[arg-type]
        except TypeError as e:
            raise ConfigError(f"not a run's configuration: {e}") from None

    @property
    def scheme(self) -> str:
        """The name the strategy registry resolves: the mutant if a scheme's mutant is chosen."""
        return self.strategy if self.mutant is None or self.arch_mutant else self.mutant

    @property
    def arch_mutant(self) -> str | None:
        """The mutant, if it patches the architecture model (``emu.arch.ARCH_MUTANTS``) rather than the scheme."""
        from emu.arch import ARCH_MUTANTS

        return self.mutant if self.mutant in ARCH_MUTANTS else None


# uname -m's names (and Debian's), which a kernel developer types for the arch/ directory's: the closest name to offer
UNAME_ARCHES = {
    "x86_64": "x86", "amd64": "x86", "i386": "x86", "i686": "x86", "aarch64": "arm64",
    "ppc64": "powerpc", "ppc64le": "powerpc", "ppc": "powerpc", "riscv64": "riscv", "loongarch64": "loongarch", "s390x": "s390",
}  # fmt: skip


def closest(name: str, valid: list[str]) -> str | None:
    """The valid name meant by ``name``: uname's arch name, a file's name for its path, the same name in another case, a close
    spelling, or the one name it begins (``b3`` for ``b3-rescan``); None when none is clear."""
    if UNAME_ARCHES.get(name.lower()) in valid:
        return UNAME_ARCHES[name.lower()]
    stem = os.path.splitext(os.path.basename(name))[0]
    if stem != name and stem in valid:  # the file a name stands for (machines/NAME.json): its name
        return stem
    folded = {v.lower(): v for v in valid}
    if name.lower() in folded:
        return folded[name.lower()]
    close = difflib.get_close_matches(name, valid, n=1)
    if close:
        return close[0]
    begun = [v for v in valid if name and v.lower().startswith(name.lower())]
    return begun[0] if len(begun) == 1 else None


SUGGEST_LIST_CHARS = 600  # a longer list of valid names (the matrix's cells) is not one readable line: the nearest few instead


def suggest(name: str, valid: list[str]) -> str:
    close = closest(name, valid)
    hint = f"; did you mean '{close}'?" if close else ""
    listed = ", ".join(valid)
    if len(listed) > SUGGEST_LIST_CHARS:
        near = difflib.get_close_matches(name, valid, n=3, cutoff=0.4)
        return f"(one of {len(valid)}{': the nearest ' + ', '.join(near) if near else ''}){hint}"
    return f"(valid: {listed}){hint}"


MAX_PROCS = 4096  # live user processes a run keeps (--procs), or a benchmark's pools hold
MAX_DURATION_S = 7 * 24 * 3600  # a longer load is a typo (a value in ms?), and past any watchdog's patience


def max_cpus_here() -> int:
    """How many CPU processes this machine can hold: memory and the process limit."""
    avail = psutil.virtual_memory().available // _BYTES_PER_CPU
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
        if soft != resource.RLIM_INFINITY:
            mine = len([p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == os.getuid()])
            avail = min(avail, max(0, soft - mine - 16))
    except (ImportError, OSError, psutil.Error):
        pass
    return int(max(1, min(MAX_CPUS, avail)))


def arches_declaring(option: str) -> tuple[str, ...]:
    """The architecture models that declare ``option`` (a RunConfig field) their own, in name order."""
    from emu.arch import ARCHES

    return tuple(sorted(n for n, a in ARCHES.items() if option in a.options))


def schemes_declaring(option: str) -> tuple[str, ...]:
    from emu.strategies import STRATEGIES

    return tuple(sorted(n for n, s in STRATEGIES.items() if option in s.options))


SCHEDS = ("free", *sched_choices())  # free, then every policy --sched names (emu.machine.policies)


def scheds() -> tuple[str, ...]:
    """The --sched choices now: free, and the policies the registry finds."""
    return ("free", *sched_choices())


MAX_STEPS = 1_000_000_000
MAX_TRIM_TIMER = 1_000_000


def validate(
    cfg: RunConfig, strategies: list[str], mutants: dict[str, str], arches: list[str], arch_mutants: dict[str, str] | None = None
) -> None:
    """Raise ConfigError with one readable line for any setting out of range or unknown.
    ``mutants`` maps each scheme mutant to its strategy, ``arch_mutants`` each arch mutant to its
    architecture (default: the ``emu.arch`` registry)."""
    from emu.harness.plugins import load_config

    load_config(cfg)  # a part named by spec, and its mutants, join the lists (ConfigError if it cannot)
    from emu.arch import ARCH_MUTANTS, ARCHES
    from emu.strategies import MUTANTS, STRATEGIES

    strategies = sorted({*strategies, *(s for s in STRATEGIES if ":" in s)})
    mutants = {**mutants, **{m: c.mutant_of or "" for m, c in MUTANTS.items() if m not in mutants}}
    arches = sorted({*arches, *(a for a in ARCHES if ":" in a)})
    if arch_mutants is None:
        arch_mutants = {m: a.mutant_of or "" for m, a in ARCH_MUTANTS.items()}
    if cfg.cpus < 1:
        raise ConfigError(f"--cpus must be at least 1, got {cfg.cpus}")
    limit = max_cpus_here()
    if cfg.cpus > limit:
        raise ConfigError(f"--cpus {cfg.cpus} is more than this machine can hold (at most {limit} here)")
    if cfg.strategy not in strategies:
        raise ConfigError(f"unknown strategy '{cfg.strategy}' {suggest(cfg.strategy, strategies)}")
    if cfg.arch not in arches:
        raise ConfigError(f"unknown architecture '{cfg.arch}' {suggest(cfg.arch, arches)}")
    if cfg.mutant is not None:
        if cfg.mutant in arch_mutants:
            patched = arch_mutants[cfg.mutant]
            if cfg.arch != patched:
                raise ConfigError(f"mutant '{cfg.mutant}' patches architecture '{patched}', not '{cfg.arch}' (add --arch {patched})")
        elif cfg.mutant not in mutants:
            raise ConfigError(f"unknown mutant '{cfg.mutant}' {suggest(cfg.mutant, sorted({**mutants, **arch_mutants}))}")
        elif cfg.strategy != mutants[cfg.mutant]:
            raise ConfigError(f"mutant '{cfg.mutant}' belongs to strategy '{mutants[cfg.mutant]}', not '{cfg.strategy}'")
    if not cfg.duration > 0 or cfg.duration > MAX_DURATION_S:
        raise ConfigError(f"--duration must be a positive number of seconds up to a week ({MAX_DURATION_S:,}), got {cfg.duration:g}")
    if not 0 <= cfg.seed < 2**63:
        raise ConfigError(f"--seed must be between 0 and 2**63-1, got {cfg.seed}")
    if not 1 <= cfg.trim_timer <= MAX_TRIM_TIMER:
        raise ConfigError(f"--trim-timer must be between 1 and {MAX_TRIM_TIMER} flushes, got {cfg.trim_timer}")
    check_part_options(cfg)
    if not 0.0 <= cfg.noise <= 1.0:
        raise ConfigError(f"--noise must be a probability in [0, 1], got {cfg.noise}")
    unknown = [n for n in cfg.perturb if n not in perturbations.KINDS or perturbations.KINDS[n].field]
    if unknown:
        valid = [k.name for k in perturbations.kinds() if not k.field]
        raise ConfigError(f"unknown perturbation '{unknown[0]}' {suggest(unknown[0], valid)}")
    for k in perturbations.enabled(cfg):  # each perturbation's own conditions, from its declaration
        if cfg.cpus < k.min_cpus:
            raise ConfigError(f"--{k.name} needs at least {k.min_cpus} CPUs" + (f" ({k.min_cpus_why})" if k.min_cpus_why else ""))
        if k.free_only and cfg.deterministic:
            raise ConfigError(f"--{k.name} {k.free_only}: under a deterministic --sched it has no effect")
    if cfg.memory_model not in MEMORY_MODELS:
        raise ConfigError(f"unknown memory model '{cfg.memory_model}' {suggest(cfg.memory_model, list(MEMORY_MODELS))}")
    if not 0.0 <= cfg.race_delay <= 1.0:
        raise ConfigError(f"--race-delay must be a probability in [0, 1], got {cfg.race_delay}")
    for flag, v in (("--watchdog", cfg.watchdog), ("--ipi-timeout", cfg.ipi_timeout)):
        if not 0.1 <= v <= 3600:
            raise ConfigError(f"{flag} must be between 0.1 and 3600 seconds, got {v}")
    if cfg.sched not in scheds():
        raise ConfigError(f"unknown scheduling mode '{cfg.sched}' {suggest(cfg.sched, list(scheds()))}")
    if not 1 <= cfg.steps <= MAX_STEPS:
        raise ConfigError(f"--steps must be between 1 and {MAX_STEPS:,}, got {cfg.steps}")
    if not 1 <= cfg.depth <= 64:
        raise ConfigError(f"--depth must be between 1 and 64, got {cfg.depth}")
    if cfg.replay and not cfg.deterministic:
        raise ConfigError("--replay follows a deterministic run's schedule: add the --sched it was recorded with")
    w = cfg.workload
    for name in (
        "p_fork",
        "p_exit",
        "p_block",
        "p_migrate",
        "p_kthread",
        "p_use_mm",
        "p_munmap",
        "p_free_tables",
        "p_exec",
        "p_kernel_exec",
        "p_preempt",
    ):
        v = getattr(w, name)
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must be a probability in [0, 1], got {v}")
    if w.p_exit <= 0:
        raise ConfigError("--p-exit must be above 0, or no process would ever exit")
    if cfg.bench_tasks and not cfg.benchmark:
        raise ConfigError("--bench-tasks is a benchmark's parameter: add --benchmark NAME")
    if not 0 <= cfg.bench_tasks <= 4096:
        raise ConfigError(f"--bench-tasks must be between 0 (the benchmark's default) and 4096, got {cfg.bench_tasks}")
    if cfg.benchmark:
        _check_bench_room(cfg)
    if not 0 <= w.procs <= MAX_PROCS:
        raise ConfigError(f"--procs must be between 0 (automatic) and {MAX_PROCS}, got {w.procs}")
    if not 1 <= w.threads <= 64:
        raise ConfigError(f"--threads must be between 1 and 64, got {w.threads}")
    if not 0 <= w.kthreads <= 16:
        raise ConfigError(f"--kthreads must be between 0 and 16, got {w.kthreads}")
    if not 0 <= w.sleep_us <= 1_000_000:
        raise ConfigError(f"--sleep-us must be between 0 and 1000000, got {w.sleep_us}")


def check_part_options(cfg: RunConfig) -> None:
    """An option a part declares its own (``Strategy.options``, ``Arch.options``) set away from its
    default where the run's scheme or arch model does not declare it: refused, rather than ignored."""
    from emu.arch import ARCHES
    from emu.strategies import STRATEGIES

    default = RunConfig()
    for kind, parts, chosen in (("strategy", STRATEGIES, cfg.strategy), ("arch", ARCHES, cfg.arch)):
        mine = parts[chosen].options if chosen in parts else ()
        for option in sorted({o for p in parts.values() for o in p.options}):
            if getattr(cfg, option) != getattr(default, option) and option not in mine:
                owners = sorted(n for n, p in parts.items() if option in p.options)
                raise ConfigError(f"--{option.replace('_', '-')} applies to --{kind} {' or '.join(owners)}, not '{chosen}'")


def validate_fix(cfg: RunConfig, fixes: dict[str, str]) -> None:
    """``--fix``: each name one of the scheme's fixes (``fixes``: name -> what it is), no repeats."""
    if not cfg.fix:
        return
    names = cfg.fix.split(",")
    if not fixes:
        raise ConfigError(f"--fix: '{cfg.scheme}' has no fixes to apply (schemes with fixes: see 'list')")
    for name in names:
        if name not in fixes:
            raise ConfigError(f"--fix: unknown fix '{name}' for '{cfg.scheme}' {suggest(name, sorted(fixes))}")
    if len(set(names)) != len(names):
        raise ConfigError(f"--fix: a fix named twice in '{cfg.fix}'")


def _check_bench_room(cfg: RunConfig) -> None:
    """A benchmark's main task creates every task on cpu0: its pool must hold them (one line if not)."""
    driver, w = DRIVERS[cfg.benchmark], cfg.workload
    need = driver.tasks_of(cfg.bench_tasks or driver.default_units(cfg.cpus)) + 1
    room = Layout.for_run(cfg.cpus, w.live_procs(cfg.cpus), w.threads, w.kthreads, ()).user_tasks_per_cpu
    if need > room:
        raise ConfigError(
            f"--benchmark {cfg.benchmark} creates {need} tasks on cpu0, whose pool holds {room} with this workload: "
            "leave --procs/--threads/--kthreads out (sized for it) or raise --procs"
        )


def read_json(path: str, who: str, not_json: str) -> Any:
    """The JSON in file ``path``; ConfigError, one line starting with ``who``, if it cannot be read
    (the OS's reason) or is not JSON (``not_json``)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise ConfigError(f"{who}: cannot read '{path}': {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{who} {path}: {not_json}") from None
