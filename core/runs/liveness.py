"""Whether the process that runs a training run is still there.

A run records the process it runs in: its PID, the PID's start time and the host.
That process counts as gone when the PID no longer exists, is a zombie, or now
belongs to another process (its start time, field 22 of `/proc/<pid>/stat`,
changed). A process on another host (a workspace on a shared disk) is never
declared gone here: it cannot be checked from this machine.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


def process_start_time(pid: int) -> str | None:
    """The start time of `pid` in clock ticks since boot (`/proc`), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None  # fields[0] is field 3, so field 22 is [19]


def process_alive(pid: int, start_time: str | None = None) -> bool:
    """Whether `pid` still runs (and, if `start_time` is given, is the same process)."""
    if pid <= 0:
        return False
    if os.name != "posix":  # os.kill(pid, 0) would send CTRL_C on Windows
        return _alive_without_proc(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()  # vanished just now, or no /proc at all
    except OSError:
        return True
    if stat[stat.rfind(")") + 2 :][:1] in ("Z", "X"):  # exited, not yet waited for
        return False
    return start_time is None or process_start_time(pid) in (None, start_time)


def _alive_without_proc(pid: int) -> bool:
    try:
        import psutil  # optional: only where /proc and signals are missing
    except ImportError:
        return True  # cannot tell: never fail a run we cannot check
    return psutil.pid_exists(pid)


@dataclass(frozen=True)
class Owner:
    """The process a run belongs to, as the registry stores it (pid, pid_start, host)."""

    pid: int | None
    start_time: str | None
    host: str | None

    @classmethod
    def of(cls, pid: int | None = None) -> Owner:
        """Process `pid` of this host (default: this process)."""
        pid = os.getpid() if pid is None else int(pid)
        return cls(pid, process_start_time(pid), this_host())

    def gone(self) -> bool:
        """Whether the process is known to have ended (never for another host or an unknown PID)."""
        if self.pid is None or self.host != this_host():
            return False
        return not process_alive(self.pid, self.start_time)


def this_host() -> str:
    """The name runs of this machine record as their host."""
    return socket.gethostname()
