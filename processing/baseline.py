"""A person's resting baseline (lnRMSSD and heart rate, by day and night) and resting heart rate.

What it learns from, and why it cannot lock in:
- Rest samples: one per SAMPLE_S of rest, kept in a ring of the last MAX_SAMPLES rest samples per
  period of the day. The baseline is the median of the ring and its spread the interquartile
  range / 1.349 (the SD of a normal distribution with that IQR). Every rest reading is learned
  from, whatever it scores: an earlier version learned only from rest scoring below the stressed
  threshold, so a person whose own quiet rest scored above it against a wrong prior never
  updated again (issue 8). A median needs more than half of the ring to move, so a stressful
  hour in a day of rest barely shifts it, but a person's real resting level always wins within
  half a ring. (Robust location and scale: Huber & Ronchetti 2009, Robust Statistics, 2nd ed.;
  Plews et al. 2013, Sports Med 43:773, doi:10.1007/s40279-013-0071-8, for a rolling personal
  lnRMSSD baseline.)
- Day and night: heart rate is lower and HRV higher during the night and early morning than in
  the day (circadian and sleep-related vagal dominance: Bonnemeier et al. 2003, J Cardiovasc
  Electrophysiol 14:791, doi:10.1046/j.1540-8167.2003.03078.x), so rest is compared with rest
  from the same part of the day. NIGHT_HOURS (local
  22:00-07:00) is our choice: the usual sleep window. Until a period has CALIBRATION_SAMPLES
  of its own, the other period's ring stands in once it has them, and before either has, all the
  person's rest together (population norms before any). Calibration is 10 min of rest in all: a
  strap put on at 21:50 was not calibrated until one period alone held 10 min, which at 22:00 meant
  ten minutes of whatever came next, a work call included.
- Spread of a young baseline: the person's spread is shrunk toward the population's until
  enough rest is seen (`shrunk_sd`), so that a few minutes of steady rest do not make every
  small wobble of heart rate read as stress (issue 17: the demo's morning rest scored 94 at HR
  68 after 5 min; a seated rest declared as calibration scored 99.9 while it was learned).
- The score's reference is kept for a day: a scored reading is compared with the baseline as it
  stood at the first scored reading of its period in its day (`score_reference`; a day runs from
  the end of one night period to the next, local 07:00-07:00), while the rings keep learning for
  the next day; only a rest that moved as far as the RR-only gate's leave level (KEPT_UNTIL_BPM)
  in the ring it came from renews it within the day, so that it cannot lock in either. Ours,
  after the daily baselines of Plews et al. 2013 (the rolling mean is updated once a day, from
  whole days): a reference that follows the day's own readings lets a
  stressful afternoon raise the bar it is judged by, and made the score rank a session's readings
  differently from heart rate alone (issue 17: on Stress-Predict its within-person AUC fell below
  heart rate's by 0.01-0.06). Within a day and period the score is therefore a fixed increasing
  function of heart rate; across days it follows the person. No score is given before the baseline
  is calibrated (processing/stress.py), so a new user's first day is judged against their
  calibration (10 min of rest, or a declared rest span).
- Resting heart rate (for the heart-rate reserve of the activity decision): the
  REST_HR_QUANTILE of the 60 s heart rates of the last REST_HR_MEMORY_S, whatever the activity.
  A low quantile of sustained (60 s) heart rate is the lowest HR a person sustains; learning
  it from every reading, not only from rest, means a seated person with a high HR is not
  called `active` for ever because their rest was never scored (issue 8).

Pure: no I/O and no clock; `to_dict`/`from_dict` let the application persist it so that a
restart never starts calibration over.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from processing.window import quantile

# Population resting norms, used until personal data exists: lnRMSSD from Nunan et al. 2010
# (PACE 33:1407: RMSSD 42 ms) with the between-person SD of lnRMSSD ~0.4; resting HR 68 +- 8 bpm.
POPULATION_LN_RMSSD = (math.log(42.0), 0.40)
POPULATION_REST_HR = (68.0, 8.0)

# Ours: one rest sample per 30 s. Readings overlap (60 s RMSSD window every 10 s), so samples
# closer than that add little information; 30 s still gives 20 samples from a 10 min rest.
SAMPLE_S = 30.0
# Ours: 12 h of rest samples per period (several days of daytime rest for a wearable; a whole
# lab session many times over).
MAX_SAMPLES = 1440
# Ours: 10 min of rest (20 samples) before the personal baseline is trusted alone and before
# `stressed` is ever declared. 10 min is the usual psychophysiology resting baseline (e.g.
# Jennings et al. 1992, Psychophysiology 29:742, "Alternative cardiovascular baseline assessment
# techniques": 10 min vanilla baseline), and population norms alone misjudge many people
# (resting RMSSD varies several-fold between healthy adults).
CALIBRATION_SAMPLES = 20
# Ours: a rest span the user declared (calibration) is trusted once it gave this many readings
# (a minute of readings 10 s apart gives 5 or 6 of them, depending on where the 10 s grid falls
# against the first full 60 s window): a wrist device may lose most of a 10 min lab baseline to
# gaps, and the person said it was rest, so there is no doubt to wait out. (It was 6: a 2 min
# calibration at the start of a file then calibrated in some people and not in others, issue 17.)
MIN_KNOWN_SAMPLES = 5
# Ours: rest samples after which the baseline's location (as reported while it is young) is the
# person's own median alone: population norms put people in the wrong place far more than 3 min
# of their own rest does (resting HR and RMSSD vary several-fold between people). No score is
# given before calibration (processing/stress.py; issue 17: a person resting at HR 100 scored 100
# through a lab baseline against the population's 68).
BLEND_SAMPLES = 6
# The weight of the population spread in the spread of a young baseline, in rest samples (ours:
# as much as a calibration, 10 min of rest). See `shrunk_sd`.
PRIOR_SAMPLES = 20
# Spread floors (ours): lnRMSSD 0.15 (of the order of the day-to-day SD of resting lnRMSSD in one
# person, a CV of a few percent in Plews et al. 2013) and 2 bpm for heart rate (a minute-to-minute
# wobble of seated heart rate), so that a very steady calibration does not read every small
# change as stress. 2 rather than 3 bpm: on Stress-Predict the 10 min lab baselines are that
# steady, and 3 bpm hid a third of the task readings' rise (benchmarks/stress_predict.py).
MIN_LN_SD = 0.15
MIN_HR_SD = 2.0
# Ours: the score's reference kept for the day is taken again once the median of the learned rest
# has moved this far from it (bpm): the level below which processing/stress.py's RR-only gate lets
# a reading go (RrGate.leave_bpm). A rest that moved this much (half the ring or more) is the
# person's rest now, not an event, and a reference left further behind would hold readings at that
# rest in the gate all day (Stress-Predict S13, whose lab baseline was far calmer than the rest of
# its session).
KEPT_UNTIL_BPM = 4.2
# Local hours of the night period (ours; see the module docstring).
NIGHT_HOURS = (22, 7)
# Resting heart rate: 5th percentile (ours) of 60 s heart rates over the last 24 h, once 2 min
# of them exist (population norm before). 5 % lets exercise fill 95 % of a day's readings before
# it is taken for rest; 2 min keeps a seated person with a high heart rate `active` for 2 min at
# most at the start of a recording.
REST_HR_QUANTILE = 0.05
REST_HR_MEMORY_S = 86400.0
REST_HR_MIN_SAMPLES = 4
# A resting HR above 100 bpm is tachycardia by definition; 110 (ours) leaves a margin for a
# nervous seated person while a person exercising for hours from the start is still `active`.
MAX_REST_HR = 110.0


@dataclass(frozen=True, slots=True)
class Reference:
    """What a reading is compared with: lnRMSSD and HR location and spread, and how many rest
    samples of the person's own they rest on (0 = population norms only)."""

    ln_rmssd_mean: float
    ln_rmssd_sd: float
    hr_mean: float
    hr_sd: float
    samples: int


class _Ring:
    """The last `size` rest samples (time, lnRMSSD, HR) in arrival order, and each column sorted.

    `spaced` counts the samples at least SAMPLE_S after the last one counted: the independent
    samples it holds (declared rest gives a sample every reading, 10 s apart, whose 60 s
    windows overlap), for the spread's shrinkage."""

    __slots__ = ("_last_spaced_t", "hr", "ln", "rows", "size", "spaced")

    def __init__(self, size: int):
        self.size = size
        self.rows: deque[tuple[float, float, float, bool]] = deque()
        self.ln: list[float] = []
        self.hr: list[float] = []
        self.spaced = 0
        self._last_spaced_t = -math.inf

    def push(self, t: float, ln: float, hr: float) -> None:
        spaced = abs(t - self._last_spaced_t) >= SAMPLE_S
        if spaced:
            self._last_spaced_t = t
            self.spaced += 1
        self.rows.append((t, ln, hr, spaced))
        insort(self.ln, ln)
        insort(self.hr, hr)
        if len(self.rows) > self.size:
            _, old_ln, old_hr, old_spaced = self.rows.popleft()
            self.spaced -= old_spaced
            del self.ln[bisect_left(self.ln, old_ln)]
            del self.hr[bisect_left(self.hr, old_hr)]

    def __len__(self) -> int:
        return len(self.rows)

    def reference(self) -> Reference:
        return _robust(self.ln, self.hr, len(self.rows))


def _robust(ln: list[float], hr: list[float], n: int) -> Reference:
    """Median and robust spread (with floors) of sorted lnRMSSD and HR samples."""
    return Reference(
        quantile(ln, 0.5), max(MIN_LN_SD, _iqr_sd(ln)), quantile(hr, 0.5), max(MIN_HR_SD, _iqr_sd(hr)), n
    )


def shrunk_sd(own_sd: float, samples: int, population_sd: float) -> float:
    """The spread of a baseline of `samples` rest samples whose own (robust) SD is `own_sd`,
    shrunk toward `population_sd`: sqrt((d0 s0^2 + n s^2) / (d0 + n)) with d0 = PRIOR_SAMPLES.

    This is the posterior variance estimate of a normal model with a scaled inverse-chi-square
    prior of d0 degrees of freedom centred on the population variance (Gelman et al. 2013,
    Bayesian Data Analysis, 3rd ed., section 3.3), the form of the empirical-Bayes moderated
    variance of Smyth 2004 (Stat Appl Genet Mol Biol 3:3, doi:10.2202/1544-6115.1027). The
    prior's centre is the population SD the score uses when it knows nothing of the person
    (POPULATION_*), and its weight d0 (20 samples, as much as 10 min of rest) is ours: after 10
    min of rest the spread lies halfway (in variance) between the population's and the
    person's, after an hour of rest it is mostly the person's, after a day of rest it is theirs.
    `samples` counts independent samples, SAMPLE_S apart (`_Ring.spaced`): declared rest gives
    a sample per reading, whose windows overlap, and counts no more per minute than other rest.
    """
    return math.sqrt((PRIOR_SAMPLES * population_sd**2 + samples * own_sd**2) / (PRIOR_SAMPLES + samples))


def _iqr_sd(s: list[float]) -> float:
    """Robust SD: interquartile range / 1.349 (exact for a normal distribution)."""
    return (quantile(s, 0.75) - quantile(s, 0.25)) / 1.349


class Baseline:
    """One person's resting baseline by period of the day, and resting heart rate.

    `tz` (a `zoneinfo` zone) turns unix time into local wall-clock time for the day/night split,
    so it follows daylight saving time (the core reads no clock or zone; the application passes
    it). It is not saved: a restored baseline takes the zone it is given now.
    """

    def __init__(self, tz: tzinfo = UTC):
        self.tz = tz
        self.periods = {"day": _Ring(MAX_SAMPLES), "night": _Ring(MAX_SAMPLES)}
        self._last_rest_t = -math.inf
        self.known_samples = 0
        self._hr_times: deque[float] = deque()
        self._hr_values: deque[float] = deque()
        self._hr_sorted: list[float] = []
        self._last_hr_t = -math.inf
        self._cache: dict[str, tuple[Reference, bool]] = {}  # period -> `_reference`
        self._block: int | None = None  # see `_local`
        self._block_local: tuple[str, date] = ("day", date.min)
        # period -> (day, score reference, whether it came from the period's own ring)
        self._kept: dict[str, tuple[date, Reference, bool]] = {}

    # -- learning -------------------------------------------------------------------------------

    def add_rest(self, t: float, ln_rmssd: float, hr_bpm: float, known: bool = False) -> bool:
        """Learn from a rest reading at unix time `t`; True if taken. Rest inferred from the
        activity decision gives one sample per SAMPLE_S; rest the user declared (`known`, a
        calibration span) gives a sample per reading: it is trusted more (ours), so that the
        tasks of a lab session or a stressful day after a calibration move the median less."""
        # abs: a clock that went back (a saved baseline replayed on an older recording) must
        # not stop the learning.
        if not known and abs(t - self._last_rest_t) < SAMPLE_S:
            return False
        self._last_rest_t = t
        self.known_samples += known
        self.periods[self.period(t)].push(t, ln_rmssd, hr_bpm)
        self._cache.clear()
        return True

    def add_hr(self, t: float, hr_bpm: float) -> None:
        """Learn from the 60 s heart rate of any reading (for the resting heart rate)."""
        if abs(t - self._last_hr_t) < SAMPLE_S:
            return
        self._last_hr_t = t
        self._hr_times.append(t)
        self._hr_values.append(hr_bpm)
        insort(self._hr_sorted, hr_bpm)
        while self._hr_times and self._hr_times[0] < t - REST_HR_MEMORY_S:
            self._hr_times.popleft()
            del self._hr_sorted[bisect_left(self._hr_sorted, self._hr_values.popleft())]

    # -- what it knows --------------------------------------------------------------------------

    def period(self, t: float) -> str:
        """'night' for local NIGHT_HOURS, else 'day'."""
        return self._local(t)[0]

    def _local(self, t: float) -> tuple[str, date]:
        """(period, `day`) of `t`, worked out once per 15 min of unix time: every zone's offset
        and daylight-saving step is a whole number of quarter hours, so both are constant within
        one, and a reading every 10 s need not convert its time three times."""
        block = int(t // 900)
        if block != self._block:
            local = datetime.fromtimestamp(t, self.tz)
            start, end = NIGHT_HOURS
            period = "night" if local.hour >= start or local.hour < end else "day"
            day = (local.replace(tzinfo=None) - timedelta(hours=end)).date()
            self._block, self._block_local = block, (period, day)
        return self._block_local

    @property
    def samples(self) -> int:
        """Rest samples held, both periods."""
        return sum(len(r) for r in self.periods.values())

    @property
    def rest_s(self) -> float:
        """Rest time the baseline has learned from (s, both periods, at most the rings' span)."""
        return SAMPLE_S * self.samples

    @property
    def calibrated(self) -> bool:
        """Enough rest of the person's own to trust the personal baseline: 10 min of rest (both
        periods together), or a declared rest span that gave MIN_KNOWN_SAMPLES readings."""
        return self.known_samples >= MIN_KNOWN_SAMPLES or self.samples >= CALIBRATION_SAMPLES

    def reference(self, t: float) -> Reference:
        """The baseline for a reading at `t`: the ring of t's period once it holds a calibration,
        else the other period's when that does, else both rings together. Its location is blended
        with the population norms in proportion to how much of a calibration it holds
        (BLEND_SAMPLES) until calibrated; its spread is shrunk toward the population's
        (`shrunk_sd`)."""
        return self._reference(t)[0]

    def _reference(self, t: float) -> tuple[Reference, bool]:
        """`reference(t)`, and whether it came from t's period's own ring alone."""
        name = self.period(t)
        if name in self._cache:
            return self._cache[name]
        own = self.periods[name]
        other = self.periods["night" if name == "day" else "day"]
        if len(own) >= CALIBRATION_SAMPLES:
            mine, spaced = own.reference(), own.spaced
        elif len(other) >= CALIBRATION_SAMPLES:
            mine, spaced = other.reference(), other.spaced
        elif len(own) or len(other):
            n = len(own) + len(other)
            mine, spaced = (
                _robust(sorted(own.ln + other.ln), sorted(own.hr + other.hr), n),
                own.spaced + other.spaced,
            )
        else:
            mine, spaced = None, 0
        pm, ps = POPULATION_LN_RMSSD
        hm, hs = POPULATION_REST_HR
        if mine is None:
            ref = Reference(pm, ps, hm, hs, 0)
        else:
            w = 1.0 if self.calibrated else min(1.0, mine.samples / BLEND_SAMPLES)
            ref = Reference(
                w * mine.ln_rmssd_mean + (1 - w) * pm,
                shrunk_sd(mine.ln_rmssd_sd, spaced, ps),
                w * mine.hr_mean + (1 - w) * hm,
                shrunk_sd(mine.hr_sd, spaced, hs),
                mine.samples,
            )
        # both rings together are the own ring alone while the other is empty
        self._cache[name] = ref, len(own) >= CALIBRATION_SAMPLES or not len(other)
        return self._cache[name]

    def day(self, t: float) -> date:
        """The local day `t` belongs to for the score's reference: it starts where the night
        period ends (NIGHT_HOURS[1], 07:00), so a night is one day, not split at midnight."""
        return self._local(t)[1]

    def score_reference(self, t: float) -> Reference:
        """What a scored reading at `t` is compared with: `reference(t)` as it stood at the first
        call for t's period in t's day (`day`), kept until that day ends, or until the rest learned
        in the period's own ring, which it came from, has moved KEPT_UNTIL_BPM from it (the module
        docstring). One taken while the period's own ring was young (the other period's, or both
        together) stays the day's: the own ring coming of age is a change of source, not a move of
        the person's rest (a strap put on at 21:50 before a stressful call: the night ring's first
        10 min were mostly the call)."""
        name, day = self._local(t)
        kept = self._kept.get(name)
        now, own = self._reference(t)
        if (
            kept is None
            or kept[0] != day
            or (kept[2] and abs(now.hr_mean - kept[1].hr_mean) >= KEPT_UNTIL_BPM)
        ):
            kept = self._kept[name] = (day, now, own)
        return kept[1]

    def resting_hr(self) -> float:
        """The lowest heart rate the person sustains (see the module docstring), in bpm."""
        if len(self._hr_sorted) < REST_HR_MIN_SAMPLES:
            return POPULATION_REST_HR[0]
        return min(MAX_REST_HR, quantile(self._hr_sorted, REST_HR_QUANTILE))

    # -- persistence ------------------------------------------------------------------------------

    def to_dict(self, exact: bool = False) -> dict:
        """A JSON-ready dict of everything learned (version 1); rounded to what matters, or with
        `exact` every value as it is (a worker's snapshot: a rebuild must score as the original)."""
        r = (lambda x, _digits: x) if exact else round
        return {
            "version": 1,
            "known_samples": self.known_samples,
            "rest": {
                name: [[r(t, 3), r(ln, 5), r(hr, 3)] for t, ln, hr, _ in ring.rows]
                for name, ring in self.periods.items()
            },
            "hr": [[r(t, 3), r(hr, 3)] for t, hr in zip(self._hr_times, self._hr_values)],
            "kept": {
                name: [
                    day.isoformat(),
                    r(k.ln_rmssd_mean, 5),
                    r(k.ln_rmssd_sd, 5),
                    r(k.hr_mean, 3),
                    r(k.hr_sd, 3),
                    k.samples,
                    own,
                ]
                for name, (day, k, own) in self._kept.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict, tz: tzinfo = UTC) -> Baseline:
        """The inverse of `to_dict`, in zone `tz` (a `utc_offset_s` saved by older versions is
        ignored: it froze the offset of the day it was saved); ValueError (naming the key) for
        data it cannot read."""
        if not isinstance(data, dict) or data.get("version") != 1:
            raise ValueError("baseline: expected a dict with version 1")
        try:
            b = cls(tz)
            b.known_samples = int(data.get("known_samples", 0))
            for name, rows in data["rest"].items():
                if name not in b.periods:
                    raise ValueError(f"baseline: unknown period {name!r} in 'rest'")
                for t, ln, hr in rows:
                    b.periods[name].push(float(t), float(ln), float(hr))
                    b._last_rest_t = max(b._last_rest_t, float(t))
            for t, hr in data["hr"]:
                b.add_hr(float(t), float(hr))
            # "kept" is absent in baselines saved before it existed: kept again at the next score.
            for name, (day, ln, ln_sd, hr, hr_sd, samples, own) in data.get("kept", {}).items():
                if name not in b.periods:
                    raise ValueError(f"baseline: unknown period {name!r} in 'kept'")
                ref = Reference(float(ln), float(ln_sd), float(hr), float(hr_sd), int(samples))
                b._kept[name] = (date.fromisoformat(day), ref, bool(own))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if str(exc).startswith("baseline:"):
                raise
            raise ValueError(f"baseline: malformed data ({exc!r})") from None
        return b
