"""The kernel's word on the system clock (adjtimex): read through ctypes, checked against C, said at start."""

from __future__ import annotations

import ctypes
import logging
import shutil
import subprocess
import sys

import pytest

from stresswatch.timesync import STA_UNSYNC, TIME_ERROR, ClockState, Timex, kernel_clock_state, log_state


def kernel(rc: int, status: int = 0, esterror: int = 0):
    """An adjtimex that answers `rc` and fills the status and estimated error (us), as the kernel does."""

    def adjtimex(tx: Timex) -> int:
        assert tx.modes == 0  # only ever a read
        tx.status, tx.esterror = status, esterror
        return rc

    return adjtimex


def test_the_clock_is_unsynchronised_on_time_error_or_sta_unsync_and_synchronised_otherwise():
    assert kernel_clock_state(kernel(TIME_ERROR)).synchronised is False
    assert kernel_clock_state(kernel(0, status=STA_UNSYNC | 0x2000)).synchronised is False
    ok = kernel_clock_state(kernel(0, status=0x2000, esterror=1500))  # TIME_OK, STA_NANO
    assert ok == ClockState(True, "synchronised, estimated error 1.5 ms")
    unknown = kernel_clock_state(kernel(-1))
    assert unknown.synchronised is None and unknown.detail.startswith("adjtimex failed")


C_PROGRAM = r"""
#include <stddef.h>
#include <stdio.h>
#include <sys/timex.h>
int main(void) {
    struct timex tx = {0};
    int rc = adjtimex(&tx);
    printf("%zu %zu %zu %zu %d %d\n", sizeof tx, offsetof(struct timex, status),
           offsetof(struct timex, tick), offsetof(struct timex, tai), rc, tx.status);
    return 0;
}
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux's")
def test_the_struct_and_the_answer_are_those_of_the_c_library(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to check the struct against <sys/timex.h>")
    (tmp_path / "t.c").write_text(C_PROGRAM)
    subprocess.run([cc, "-o", str(tmp_path / "t"), str(tmp_path / "t.c")], check=True, timeout=60)
    size, status, tick, tai, rc, flags = map(
        int,
        subprocess.run(
            [str(tmp_path / "t")], capture_output=True, text=True, check=True, timeout=10
        ).stdout.split(),
    )
    assert (ctypes.sizeof(Timex), Timex.status.offset, Timex.tick.offset, Timex.tai.offset) == (
        size,
        status,
        tick,
        tai,
    )
    assert kernel_clock_state().synchronised is (rc != TIME_ERROR and not flags & STA_UNSYNC)


@pytest.mark.parametrize(
    ("state", "level", "words"),
    [
        (
            ClockState(False, "not synchronised to a time source (NTP)"),
            logging.WARNING,
            "timedatectl set-ntp true",
        ),
        (ClockState(None, "adjtimex failed: Operation not permitted"), logging.WARNING, "cannot tell"),
        (ClockState(True, "synchronised, estimated error 1.5 ms"), logging.INFO, "synchronised, estimated"),
    ],
)
def test_the_service_says_at_start_whether_the_clock_is_synchronised(caplog, state, level, words):
    with caplog.at_level(logging.INFO, logger="stresswatch.clock"):
        log_state(state)
    (record,) = caplog.records
    assert record.levelno == level and words in record.getMessage()
    assert record.getMessage().startswith("system clock: ")
