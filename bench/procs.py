"""procs.py - child processes and /proc for the benchmark.

Every process the benchmark starts (servers, wrk, the idle-connection
holder, strace, callgrind_control, make) is a `Child`: it runs in a process
group of its own, and every wait on it has a time limit.  `cleanup()` ends
all children that are still running (the group first with SIGTERM, then
with SIGKILL); run.py and profile.py call it on exit, on an error and on
Ctrl-C.

The /proc readers return None when the process is gone:
`cpu_split(pid)` -> (utime, stime) in clock ticks, all threads;
`rss_kib(pid)` -> VmRSS; `machine_ticks(n)` -> the first n fields of the
`cpu` line of /proc/stat, summed (2 = user + nice).
"""

import os
import signal
import socket
import subprocess
import sys
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

_running = []  # every Child started and not yet reaped
_log_prefix = "bench"


def set_log_prefix(prefix):
    global _log_prefix
    _log_prefix = prefix


def log(msg):
    """Progress to stderr; stdout is kept for the report."""
    print("[%s %s] %s" % (_log_prefix, time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def wait_until(condition, timeout, step=0.05):
    """Poll condition() every step seconds; True once it holds, False after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


# ---- /proc ---------------------------------------------------------------

def stat_fields(pid):
    """The fields of /proc/PID/stat after "(comm)": [0] state, [3] session,
    [11] utime, [12] stime, [16] nice.  None if the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except (OSError, ValueError):
        return None
    return text[text.rindex(")") + 2:].split()


def alive(pid):
    """True while the process runs (a zombie counts as gone)."""
    f = stat_fields(pid)
    return f is not None and f[0] != "Z"


def cpu_split(pid):
    """(utime, stime) in clock ticks, all threads; None if gone."""
    f = stat_fields(pid)
    return None if f is None else (int(f[11]), int(f[12]))


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def machine_ticks(fields):
    """Sum of the first `fields` numbers of /proc/stat's `cpu` line (clock
    ticks of the whole machine): 2 = user + nice, 3 = user + nice + system."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                return sum(int(v) for v in line.split()[1:1 + fields])
    raise RuntimeError("/proc/stat has no cpu line")


def children_of(pid):
    """The pids of the process's children (all threads)."""
    pids = []
    try:
        for task in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, task)) as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def port_open(host, port):
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# ---- children --------------------------------------------------------------

class Child:
    """A process started in a process group of its own.

    Output (stdout and stderr together) goes to the file `out`, or is
    captured (`capture=True`, read it from `.output` after `wait`), or is
    discarded; `out=sys.stderr` passes it through to our stderr."""

    def __init__(self, cmd, out=None, capture=False):
        if capture:
            stdout = subprocess.PIPE
        elif out is None:
            stdout = subprocess.DEVNULL
        elif out is sys.stderr:
            stdout = sys.stderr
        else:
            stdout = open(out, "wb")
        self.cmd = cmd
        self.output = ""
        self.returncode = None
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout,
                                     stderr=subprocess.STDOUT, preexec_fn=os.setpgrp)
        self.pid = self.proc.pid
        _running.append(self)
        if stdout not in (subprocess.PIPE, subprocess.DEVNULL, sys.stderr):
            stdout.close()

    def alive(self):
        return self.returncode is None and alive(self.pid)

    def signal(self, sig):
        """Send sig to the process itself (not its group)."""
        if self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def _kill_group(self, sig):
        # Only while unreaped: until then no other group can have our pgid.
        if self.returncode is None:
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def wait(self, timeout):
        """Wait at most timeout seconds for the process to exit; then end
        what is left of its group and reap it.  Returns the exit status as
        a shell reports it (128 + signal when a signal ended it, 124 when
        the time ran out, like timeout(1))."""
        timed_out = False
        try:
            if self.proc.stdout is not None:
                self.output = self.proc.communicate(timeout=timeout)[0].decode(errors="replace")
            else:
                wait_until(lambda: not alive(self.pid), timeout)
                timed_out = alive(self.pid)
        except subprocess.TimeoutExpired:
            timed_out = True
        status = self._reap(first=signal.SIGTERM if timed_out else None)
        return 124 if timed_out else status

    def stop(self, sig, timeout):
        """Send sig, wait up to timeout seconds, then SIGKILL the group.
        Returns (status, killed)."""
        self.signal(sig)
        exited = wait_until(lambda: not alive(self.pid), timeout, step=0.1)
        status = self._reap(first=None if exited else signal.SIGKILL)
        return status, not exited

    def _reap(self, first):
        """End the group (first with `first`, if given, then SIGKILL for any
        stragglers such as an nginx worker) and collect the exit status."""
        if self.returncode is not None:
            return self.returncode
        if first is not None:
            self._kill_group(first)
            wait_until(lambda: not alive(self.pid), 5)
        self._kill_group(signal.SIGKILL)
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = -signal.SIGKILL  # stuck in the kernel; leave it
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.returncode = 128 - rc if rc < 0 else rc
        if self in _running:
            _running.remove(self)
        return self.returncode


def run(cmd, timeout, out=None, capture=False):
    """Start cmd as a Child and wait for it (at most timeout seconds).
    Returns (status, captured output)."""
    child = Child(cmd, out=out, capture=capture)
    status = child.wait(timeout)
    return status, child.output


def cleanup():
    """End every child still running: SIGTERM to each group, up to 2 s for
    each to exit, then SIGKILL.  Ignores SIGINT, SIGTERM and SIGHUP from
    here on, so a second Ctrl-C cannot cut it short."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    for child in list(_running):
        child._kill_group(signal.SIGTERM)
    for child in list(_running):
        wait_until(lambda: not alive(child.pid), 2)
        child._reap(first=None)


class Interrupted(Exception):
    """Raised in the main program by SIGINT, SIGTERM or SIGHUP."""


def _on_signal(signum, frame):
    # Once is enough: ignore further signals while cleaning up.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signal.Signals(signum).name)


def catch_signals():
    """Turn SIGINT, SIGTERM and SIGHUP into an Interrupted exception, so the
    caller's `finally: cleanup()` runs.  (Children are in groups of their
    own, so Ctrl-C at the terminal reaches only this process.)"""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
