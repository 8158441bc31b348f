"""Per-strap health for the retained device status: age of the last beat, beats and artifacts in the last
minute, heart rates without RR intervals, and whether the strap sends RR intervals (kept for `doctor`)."""

from __future__ import annotations

from collections import deque

# The span the counts cover (ours: a minute, so `beats_last_min` reads as beats per minute).
HEALTH_WINDOW_S = 60.0
# How often the service republishes every strap's status with fresh counts (ours: often enough
# that Home Assistant's `expire_after` of a few periods marks a silent service, rare enough to be
# negligible traffic).
HEALTH_EVERY_S = 30.0


class DeviceHealth:
    """One strap's last status from its Bluetooth link plus what its corrected beats show.

    `beat` is fed the beats the pipeline released (after artifact correction, so a corrected beat
    counts as an artifact), `heart_rate` the heart rates of a strap that sends no RR intervals;
    `report(now)` is the status to publish: the link's fields (battery, connected, model,
    `sends_rr`) and `last_beat_age_s` (seconds since the last beat, None before any),
    `beats_last_min`, `artifacts_last_min` (beats and corrected beats in the last minute),
    `hr_without_rr_last_min` (heart rates the strap sent without RR intervals in the last minute:
    a worn strap that gives no HRV, where an unworn one sends nothing)."""

    def __init__(self) -> None:
        self.status: dict = {}
        self.last_beat: float | None = None
        self._recent: deque[tuple[float, bool]] = deque()
        self._heart_rates: deque[float] = deque()
        self.saved_sends_rr: bool | None = None  # what the state store holds (saved_key)
        self.loaded = False  # saved_sends_rr read from the store

    def beat(self, t: float, artifact: bool) -> None:
        if self.last_beat is not None and t < self.last_beat - HEALTH_WINDOW_S:
            # the clock went back: the beats before are not in the last minute of the new clock,
            # and the age of the last beat is measured on it
            self._recent.clear()
            self.last_beat = None
        self.last_beat = t if self.last_beat is None else max(self.last_beat, t)
        self._recent.append((t, artifact))
        self._drop_before(self.last_beat - HEALTH_WINDOW_S)  # bounded even if never reported (a replay)

    def heart_rate(self, t: float) -> None:
        if self._heart_rates and t < self._heart_rates[-1]:
            self._heart_rates.clear()  # the clock went back: those before are not the new clock's last minute
        self._heart_rates.append(t)
        self._drop_heart_rates_before(t - HEALTH_WINDOW_S)

    def report(self, now: float) -> dict:
        self._drop_before(now - HEALTH_WINDOW_S)
        self._drop_heart_rates_before(now - HEALTH_WINDOW_S)
        age = None if self.last_beat is None else round(max(0.0, now - self.last_beat), 1)
        return {
            **self.status,
            "last_beat_age_s": age,
            "beats_last_min": len(self._recent),
            "artifacts_last_min": sum(a for _, a in self._recent),
            "hr_without_rr_last_min": len(self._heart_rates),
        }

    def _drop_before(self, t: float) -> None:
        while self._recent and self._recent[0][0] <= t:
            self._recent.popleft()

    def _drop_heart_rates_before(self, t: float) -> None:
        while self._heart_rates and self._heart_rates[0] <= t:
            self._heart_rates.popleft()


def saved_key(person: str, device: str) -> str:
    """The state store key (sinks/store.py, saved_state) of what the service learned about a
    strap: {"sends_rr": bool, "time": unix s when it found out, "model": str | None}."""
    return f"device/{person}/{device}"
