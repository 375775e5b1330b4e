"""The machine's one shared-memory segment: created by the runner, inherited by the CPUs.

Segments are named ``lazytlb_<creator pid>_<token>`` so that a run can tell a stale segment
(its creator is dead: the run was SIGKILLed) from one of a concurrent live run, and sweep only
the stale ones. The resource tracker is kept out of it: the runner unlinks exactly once, and
a tracker would otherwise warn about, or unlink, a segment that is still in use.
"""

from __future__ import annotations

import os
import secrets
import sys
from multiprocessing import resource_tracker, shared_memory

import psutil

from emu.machine.layout import H_MAGIC, H_RUN_ID, MAGIC

PREFIX = "lazytlb_"
SHM_DIR = "/dev/shm"


PAGE = 4096
SEMAPHORE_BYTES = PAGE  # glibc backs each named semaphore with a page of /dev/shm, even once unlinked


class SegmentError(RuntimeError):
    """The segment could not be created or is not this run's."""


def shm_room() -> int | None:
    """Bytes an unprivileged user may still allocate in /dev/shm; None if it cannot be asked."""
    try:
        st = os.statvfs(SHM_DIR)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def shm_needed(segment_bytes: int, nlocks: int) -> int:
    """What a run takes from /dev/shm: its segment and the pages behind its lock semaphores."""
    return -(-segment_bytes // PAGE) * PAGE + nlocks * SEMAPHORE_BYTES


def _untracked(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """``fn`` with the resource tracker kept out. Why a patch: before 3.13, ``SharedMemory`` registers
    every segment it creates or attaches, and the tracker unlinks it when that process exits, while
    the run still uses it (CPython gh-82300, bpo-38119); 3.13's ``track=False`` says so without one."""
    if sys.version_info >= (3, 13):
        return fn(*args, **kwargs, track=False) if fn is shared_memory.SharedMemory else fn(*args, **kwargs)
    saved = resource_tracker.register, resource_tracker.unregister
    resource_tracker.register = resource_tracker.unregister = lambda *a, **k: None  # type: ignore[assignment]
    try:
        return fn(*args, **kwargs)
    finally:
        resource_tracker.register, resource_tracker.unregister = saved


def sweep_stale() -> list[str]:
    """Unlink segments whose creating runner is gone; return their names."""
    removed: list[str] = []
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(PREFIX):
            continue
        try:
            pid = int(name[len(PREFIX) :].split("_", 1)[0])
        except ValueError:
            continue
        if psutil.pid_exists(pid):
            continue
        try:
            os.unlink(os.path.join(SHM_DIR, name))
            removed.append(name)
        except OSError:
            pass
    return removed


class Segment:
    """One run's segment. ``words`` is a memoryview of int64 over the whole buffer."""

    def __init__(self, nbytes: int) -> None:
        self.run_id = secrets.randbits(62)
        self.name = f"{PREFIX}{os.getpid()}_{secrets.token_hex(6)}"
        try:
            self._shm = _untracked(shared_memory.SharedMemory, name=self.name, create=True, size=nbytes)
        except OSError as e:
            raise SegmentError(f"cannot create a {nbytes / 2**20:.1f} MiB segment in {SHM_DIR}: {e.strerror or e}") from e
        self._owner = os.getpid()
        try:
            # tmpfs allocates lazily and a store to a page it cannot back is a SIGBUS, so reserve
            # every page now: a too-small /dev/shm fails here with ENOSPC instead of killing a CPU.
            os.posix_fallocate(self._shm._fd, 0, nbytes)  # type: ignore[attr-defined]
        except OSError as e:
            self.unlink()
            raise SegmentError(f"{SHM_DIR} has no room for a {nbytes / 2**20:.1f} MiB segment: {e.strerror or e}") from e
        self.words = self._shm.buf.cast("q")
        self.words[H_MAGIC] = MAGIC
        self.words[H_RUN_ID] = self.run_id

    def check(self) -> None:
        """What an attaching CPU does first: is this the segment of my run?"""
        if self.words[H_MAGIC] != MAGIC or self.words[H_RUN_ID] != self.run_id:
            raise SegmentError(f"segment {self.name} is not this run's (bad magic or run id)")

    def unlink(self) -> None:
        """Release the views and remove the segment; only the creating runner does this, once."""
        if os.getpid() != self._owner or self._shm is None:
            return
        if getattr(self, "words", None) is not None:
            self.words.release()
            self.words = None  # type: ignore[assignment]
        try:
            self._shm.close()
        except BufferError:
            # a view is still alive somewhere: the mapping goes with its last user, the name goes now
            self._shm._mmap = None  # type: ignore[attr-defined]
        try:
            _untracked(self._shm.unlink)
        except FileNotFoundError:
            pass
        self._shm = None  # type: ignore[assignment]

    @property
    def buf(self) -> memoryview:
        return self._shm.buf
