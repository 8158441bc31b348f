"""Turn strap notifications (arrival time + RR intervals) into time-stamped Beat and Gap events.

A strap notifies about once a second with the RR intervals that ended since the previous
notification, but without beat times. Chaining the intervals gives exact spacing yet drifts
against the wall clock over hours (strap and host clocks differ by ~10-100 ppm) and cannot
see a lost notification; stamping each notification with its arrival time sees losses but
overlaps beats. So beats are chained from the previous beat while the chain stays consistent
with the arrival clock, and re-anchored to arrival when it does not:

- chain end later than arrival (+ tolerance): the strap re-sent intervals it already sent
  (observed as "reads the same RR twice" in other monitors) -> the repeated values are dropped
  and counted as duplicates; anything else is re-anchored to arrival, never before the last
  beat (a step of the wall clock is told apart with the monotonic clock, last item);
- chain end earlier than arrival by more than `max_latency_s`: intervals were lost -> a Gap
  from the last beat, the estimated number of missing beats counted, and the new intervals
  anchored so the newest beat ends at arrival - `latency_s`;
- slow drift inside the tolerance is pulled toward the arrival clock by a small share of the
  error on each notification, so the chain never drifts away over a day;
- no skin contact -> a Gap until contact returns (its intervals are not trusted);
- heart rate without RR intervals: a strap that sends RR intervals sends such a notification now
  and then (no beat ended since the previous one: at 50 bpm about one in six), and it is
  skipped. When notifications bring a heart rate but no RR interval for HR_ONLY_AFTER_S, longer
  than any heartbeat lasts (MAX_RR_MS), the strap does not send RR intervals: its heart rates
  become `HeartRate` events (those held back while it was undecided too), `sends_rr` turns False,
  and the beats have a gap until RR intervals come again;
- the wall clock steps (NTP setting the clock of a Raspberry Pi, which has no real-time clock,
  or a person setting it): the edge passes each arrival on the wall clock and on a monotonic
  clock (which never steps), so a step is a change of (wall - monotonic) between notifications by
  more than `step_tolerance_s`. The timer's own times are then moved by the step (the chain stays
  as it was on the monotonic clock; the stamps are on the corrected wall clock), a Gap marks the
  step, so that no later stage compares times across it, and the step is counted
  (`counts.clock_steps`, `last_step_s`) for the edge to log once. Without this, a step back left
  the chain ahead of arrival: later beats kept the old clock's times and real beats whose RR
  happened to repeat the previous notification's were dropped as duplicates. Heart rates follow
  the step the same way (those held back move with it; after `HeartRate` events the Gap is at
  the last one, so that a later stage starts afresh after a step back rather than drop the
  heart rates that follow as out of order).

Pure: arrival times are passed in; nothing reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from collector.events import Beat, Event, Gap, HeartRate
from collector.heart_rate import MAX_HR_BPM, MAX_RR_MS, MIN_HR_BPM, HeartRateMeasurement

# Heart rates without a single RR interval for this long come from a strap that does not send
# them: no heartbeat lasts longer than MAX_RR_MS (3 s); ours: that plus two notifications at the
# usual 1 Hz, so a slow heart whose beats end between notifications is never taken for one.
HR_ONLY_AFTER_S = MAX_RR_MS / 1000.0 + 2.0
# Heart rates held back while undecided, at most (a bound, whatever the arrival clock does:
# 5 s of notifications at several a second stay far below it).
MAX_HELD = 64


@dataclass
class TimingCounts:
    """Beats timed, repeated intervals dropped, intervals lost, gaps, no-contact periods, and
    notifications without an RR interval (with contact)."""

    beats: int = 0
    duplicates: int = 0
    missing: int = 0
    gaps: int = 0
    no_contact: int = 0
    clock_steps: int = 0
    hr_only: int = 0


@dataclass
class BeatTimer:
    person: str
    device: str
    # Typical delay from the end of the newest interval to the notification's arrival.
    latency_s: float = 0.3
    max_latency_s: float = 2.5
    ahead_tolerance_s: float = 0.35
    drift_correction: float = 0.02
    # A change of (wall - monotonic) larger than this between notifications is a step of the wall
    # clock. Ours: below `ahead_tolerance_s`, so any step the chain could mistake for repeated
    # intervals is taken as a step; far above what separates the two clock reads of one arrival
    # (microseconds) and the slew of NTP (at most 500 ppm, 2.5 ms over the 5 s a link may be quiet).
    step_tolerance_s: float = 0.25
    counts: TimingCounts = field(default_factory=TimingCounts)
    # The size (s, + forward) of the last step of the wall clock seen, None before any.
    last_step_s: float | None = None
    # Whether the strap sends RR intervals: None until it has said (RR, or heart rate alone for
    # HR_ONLY_AFTER_S), then True or False; it may change (a band that sends RR only at rest).
    sends_rr: bool | None = None
    _last_t: float | None = None
    _clock_offset: float | None = None  # wall - monotonic at the last notification
    _prev_raw: tuple[int, ...] = ()
    _in_gap_since: float | None = None
    _hr_only_since: float | None = None  # arrival of the first heart rate without RR since the last RR
    _held: list[HeartRate] = field(default_factory=list)
    _last_hr_t: float | None = None  # the last `HeartRate` sent since the last RR interval

    def notification(
        self, arrival: float, m: HeartRateMeasurement, monotonic: float | None = None
    ) -> list[Event]:
        """Events for one notification that arrived at `arrival` (unix seconds, wall clock) and at
        `monotonic` (the same moment on a clock that never steps, e.g. time.monotonic()). Without
        `monotonic` the wall clock is taken not to step (a recording's times)."""
        out: list[Event] = []
        step = self._clock_step(arrival, monotonic)
        if step:
            gap = self._re_anchor(step)
            if gap is not None:
                out.append(gap)
        if not m.has_contact:
            self.counts.no_contact += 1
            self._start_gap(arrival)
            self._undecided()
            return out
        raw = m.rr_raw
        if not raw:
            return out + self._heart_rate_only(arrival, m)
        self.sends_rr = True
        self._last_hr_t = None
        if self._hr_only_since is not None:
            self._undecided()
        rr_s = [r / 1024.0 for r in raw]
        if self._in_gap_since is not None:
            times = self._anchored(arrival, rr_s, not_before=self._last_t)
            out.append(
                Gap(self.person, self.device, self._in_gap_since, times[0] - rr_s[0], "no contact or no data")
            )
            self.counts.gaps += 1
            self._in_gap_since = None
        elif self._last_t is None:
            times = self._anchored(arrival, rr_s)
        else:
            chain_end = self._last_t + sum(rr_s)
            if chain_end > arrival + self.ahead_tolerance_s:
                dropped = self._drop_repeats(raw)
                if dropped:
                    self.counts.duplicates += dropped
                    raw, rr_s = raw[dropped:], rr_s[dropped:]
                    if not raw:
                        return out
                    chain_end = self._last_t + sum(rr_s)
            if chain_end > arrival + self.ahead_tolerance_s:
                times = self._anchored(arrival, rr_s, not_before=self._last_t)
            elif chain_end < arrival - self.max_latency_s:
                missing_s = arrival - self.latency_s - chain_end
                self.counts.missing += max(1, round(missing_s / (sum(rr_s) / len(rr_s))))
                self.counts.gaps += 1
                times = self._anchored(arrival, rr_s)
                out.append(
                    Gap(self.person, self.device, self._last_t, times[0] - rr_s[0], "missing intervals")
                )
            else:
                # Consistent: chain, nudged toward the arrival clock against long-term drift.
                error = (arrival - self.latency_s) - chain_end
                shift = self.drift_correction * error
                times, t = [], self._last_t
                for r in rr_s:
                    t += r
                    times.append(t)
                times = [x + shift for x in times]
        for t, r in zip(times, raw):
            out.append(
                Beat(
                    self.person,
                    self.device,
                    t,
                    r * 1000.0 / 1024.0,
                    hr_bpm=float(m.hr_bpm),
                    contact=m.contact == "supported_detected" or None,
                    energy_kj=m.energy_kj,
                    source="ble",
                )
            )
        self.counts.beats += len(times)
        self._last_t = times[-1]
        self._prev_raw = raw
        return out

    def _clock_step(self, arrival: float, monotonic: float | None) -> float:
        """How far the wall clock stepped since the last notification (0.0: it did not)."""
        if monotonic is None:
            return 0.0
        offset, last = arrival - monotonic, self._clock_offset
        self._clock_offset = offset
        if last is None or abs(offset - last) <= self.step_tolerance_s:
            return 0.0
        return offset - last

    def _re_anchor(self, step: float) -> Gap | None:
        """Move the timer's times onto the stepped wall clock; a Gap at the step when beats were sent."""
        self.counts.clock_steps += 1
        self.last_step_s = step
        if self._in_gap_since is not None:
            self._in_gap_since += step  # the gap under way ends at the next beats, on the new clock
        if self._hr_only_since is not None:
            self._hr_only_since += step
        self._held = [replace(h, t=h.t + step) for h in self._held]
        if self._last_t is not None:
            self._last_t += step
        if self._last_hr_t is not None:
            # Heart rates were sent after the last beat (a strap without RR): the mark is at them.
            self._last_hr_t += step
            mark = self._last_hr_t
        elif self._last_t is not None and self._in_gap_since is None:
            mark = self._last_t
        else:
            return None
        self.counts.gaps += 1
        # The gap is empty (the beats or heart rates on both sides follow each other) and on the
        # new clock; after a step back it ends before the events already sent, which tells a later
        # stage (processing/pipeline.py) to start afresh rather than take the next ones as out of order.
        return Gap(self.person, self.device, mark, mark, f"the wall clock stepped {step:+.1f} s")

    def stall(self, since: float) -> list[Event]:
        """No notification since `since` (watchdog or disconnect): open a gap."""
        self._start_gap(since)
        self._undecided()
        return []

    def _heart_rate_only(self, arrival: float, m: HeartRateMeasurement) -> list[Event]:
        """A notification with a heart rate and no RR interval: nothing while the strap may yet
        send RR (held back), its `HeartRate` once it is found not to."""
        self.counts.hr_only += 1
        if not MIN_HR_BPM <= m.hr_bpm <= MAX_HR_BPM:
            return []  # no measurement (0 while not worn)
        sample = HeartRate(
            self.person,
            self.device,
            arrival - self.latency_s,
            float(m.hr_bpm),
            contact=m.contact == "supported_detected" or None,
            energy_kj=m.energy_kj,
            source="ble",
        )
        if self.sends_rr is False:
            self._last_hr_t = sample.t
            return [sample]
        if self._hr_only_since is None:
            self._hr_only_since = arrival
        self._held.append(sample)
        if arrival - self._hr_only_since < HR_ONLY_AFTER_S and len(self._held) < MAX_HELD:
            return []
        self.sends_rr = False
        if self._last_t is not None:
            self._start_gap(arrival)  # the beats stopped: RR intervals that come again follow a Gap
        out: list[Event] = list(self._held)
        self._last_hr_t = out[-1].t
        self._undecided()
        return out

    def _undecided(self) -> None:
        """Forget heart rates held back: an RR interval came, or contact or the link was lost."""
        self._hr_only_since = None
        self._held.clear()

    def _start_gap(self, t: float) -> None:
        if self._in_gap_since is None:
            self._in_gap_since = self._last_t if self._last_t is not None else t

    def _anchored(self, arrival: float, rr_s: list[float], not_before: float | None = None) -> list[float]:
        """Times of the intervals with the newest ending at arrival - latency (and after `not_before`)."""
        end = arrival - self.latency_s
        start = end - sum(rr_s)
        if not_before is not None and start < not_before:
            start = not_before
        times, t = [], start
        for r in rr_s:
            t += r
            times.append(t)
        return times

    def _drop_repeats(self, raw: tuple[int, ...]) -> int:
        """How many leading values of `raw` repeat the tail of the previous notification."""
        prev = self._prev_raw
        for k in range(min(len(raw), len(prev)), 0, -1):
            if raw[:k] == prev[-k:]:
                return k
        return 0
