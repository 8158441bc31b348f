"""Whether the kernel says the system clock is synchronised to a time source (adjtimex(2)), for `doctor` and `run`.

A Raspberry Pi has no real-time clock: until NTP (systemd-timesyncd, chrony, ntpd) sets the
clock, beats, readings, prompts and days are stamped with whatever time the Pi started with, and
the service follows the clock when it is set (collector/beat_timing.py, alerts/engine.py). Every
NTP implementation tells the kernel how it is doing, so the kernel's own state answers for all of
them, without asking a daemon: adjtimex(2) with `modes` 0 only reads it (no privilege needed).
The clock is unsynchronised when the call returns TIME_ERROR or the status has STA_UNSYNC
(adjtimex(2); the same test as systemd's `timedatectl` "System clock synchronized" and Prometheus
node_exporter's timex collector). The call is made through ctypes on glibc's `adjtimex`, whose
struct timex (<sys/timex.h>) is declared below.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("stresswatch.clock")

TIME_ERROR = 5  # adjtimex's return value for a clock that is not synchronised
STA_UNSYNC = 0x0040  # the status bit an NTP daemon clears once it has set the clock


class Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (Linux and glibc; `long` is the word size)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("reserved", ctypes.c_int * 11),
    ]


@dataclass(frozen=True)
class ClockState:
    """`synchronised`: True / False as the kernel says, None when it could not be asked (`detail` says why)."""

    synchronised: bool | None
    detail: str


def _libc_adjtimex(tx: Timex) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.adjtimex(ctypes.byref(tx))


def kernel_clock_state(adjtimex: Callable[[Timex], int] | None = None) -> ClockState:
    """The kernel's answer (`adjtimex` fills a Timex and returns the clock state, as the C call
    does; tests pass their own)."""
    if adjtimex is None:
        if not sys.platform.startswith("linux"):
            return ClockState(None, f"cannot ask the kernel on {sys.platform} (adjtimex is Linux's)")
        adjtimex = _libc_adjtimex
    tx = Timex()  # modes 0: read only
    rc = adjtimex(tx)
    if rc < 0:
        err = ctypes.get_errno()
        return ClockState(None, f"adjtimex failed: {os.strerror(err) if err else 'error'}")
    if rc == TIME_ERROR or tx.status & STA_UNSYNC:
        return ClockState(False, "not synchronised to a time source (NTP)")
    return ClockState(True, f"synchronised, estimated error {tx.esterror / 1000:.1f} ms")


# What to do about an unsynchronised clock, for `doctor` and the log.
UNSYNCED_FIX = (
    "enable NTP (`sudo timedatectl set-ntp true`) and check the network; a Raspberry Pi "
    "has no real-time clock, so until then times are wrong (the service follows the clock "
    "when it is set)"
)


def log_state(state: ClockState) -> None:
    """One line at the service's start: a warning unless the clock is synchronised."""
    if state.synchronised:
        log.info("system clock: %s", state.detail)
    elif state.synchronised is None:
        log.warning("system clock: cannot tell whether it is synchronised: %s", state.detail)
    else:
        log.warning("system clock: %s: %s", state.detail, UNSYNCED_FIX)
