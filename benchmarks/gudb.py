"""Benchmark of the stress state on GUDB chest-strap recordings: is walking stress? Prints figures, asserts nothing.

Data: the Glasgow University ECG database (GUDB; Howell & Porr 2018, doi:10.5281/zenodo.10925419,
CC-BY 3.0), subjects 00-12 in `$STRESSWATCH_REFERENCE_DATA/stress/gudb`: R-peaks checked by hand
on an ECG from an exercise chest strap (about lead V2-V1, like a Polar strap); 2 min each of
seated rest, a maths test on a tablet, walking and jogging on a treadmill, and a hand bike
(subject_02 has no hand bike). No motion data: this is the case of a strap without an
accelerometer.

Protocol (issue 17): per subject and condition, one CSV (`beat_time_s,rr_ms`) with the seated
rest, a 10 s gap, then the condition, analysed as `stresswatch analyze FILE --calibrate 0-2
--json` does (the rest declared as calibration, like a person with a baseline; the same
pipeline, configuration and chunked feed, in this process: `analyze`, which
tests/processing/test_gudb.py checks against the command). Counted: the state of each reading
whose 60 s window lies inside the condition, and every reading of the seated rest (scored
against the finished calibration).

Modes:
- default: per condition and subject, the `stressed` and `active` shares with the shipped
  RR-only gate and without it; the seated rest's readings; a summary per condition.
- --tradeoff: the gate's parameters (processing/stress.py `RrGate`) on a grid, their shares on
  all subjects, and the choice made leaving each subject out (item 4 of issue 17).
- --shrinkage: the weight of the population spread (processing/baseline.py PRIOR_SAMPLES)
  against the seated rest's highest score and the shares (item 5).
- --hrv-weight: does lnRMSSD earn weight in the score (item 6)? Within-person AUC of the score
  for maths against the seated rest and against walking, per weight, and the weight chosen
  leaving each subject out.

Usage: STRESSWATCH_REFERENCE_DATA=../shared/data python benchmarks/gudb.py [--tradeoff]
       [--shrinkage] [--hrv-weight] [--subjects 00 01 ...]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# This folder holds a file named like the `processing` package; keep it off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import processing.baseline as baseline_module
from collector.events import Beat
from collector.files import read_recording
from processing.pipeline import CHUNK_EVENTS, Pipeline
from processing.reading import Reading
from processing.stress import MIN_QUALITY, RR_GATE, StressModel
from stresswatch import config as configuration

SUBJECTS = [f"subject_{k:02d}" for k in range(13)]
CONDITIONS = ("maths", "walking", "hand_bike", "jogging")
REST = "sitting"
GAP_S = 10.0
CALIBRATE_MIN = (0.0, 2.0)
WINDOW_S = 60.0
# Goals of issue 17 (shares of readings, subjects 00-12 pooled).
ACTIVITY_MAX_STRESSED = 0.10
MATHS_MIN_STRESSED = 0.40
NO_GATE = "none"


@dataclass(frozen=True)
class Gate:
    """An RR-only gate tried by --tradeoff: the heart rate's rise above rest in `unit` ("bpm";
    "hrr": as a fraction of the reserve above rest, HRmax - rest HR; "z": in the baseline's
    spreads, i.e. a ceiling on the score) entering at `enter` and leaving below `leave`;
    optionally also an lnRMSSD `ln_drop` below rest, or the last 8 beats' HR `climb` bpm or
    more above the window's (onset speed)."""

    unit: str
    enter: float
    leave: float
    ln_drop: float | None = None
    climb: float | None = None


SHIPPED = Gate("bpm", RR_GATE.rise_bpm, RR_GATE.leave_bpm, RR_GATE.ln_drop)


class GateVariant(StressModel):
    """The stress model with a `Gate` of the --tradeoff grid instead of the shipped rule."""

    variant: Gate

    def _gated(self, time: float, hr_bpm: float, ln_rmssd: float, recent_hr_bpm: float | None) -> bool:
        g = self.variant
        if not self.baseline.calibrated:
            return False
        ref = self.baseline.score_reference(time)
        rise = hr_bpm - ref.hr_mean
        if g.unit == "hrr":
            rise /= max(1.0, self.hr_max - ref.hr_mean)
        elif g.unit == "z":
            rise /= ref.hr_sd
        return (
            rise >= (g.leave if self._gate_on else g.enter)
            or (g.ln_drop is not None and ref.ln_rmssd_mean - ln_rmssd >= g.ln_drop)
            or (g.climb is not None and recent_hr_bpm is not None and recent_hr_bpm - hr_bpm >= g.climb)
        )


@dataclass(frozen=True)
class Recording:
    """One protocol file: the seated rest, a gap, one condition (times in s from the file's start)."""

    subject: str
    condition: str
    path: Path
    rest_end: float
    start: float
    end: float


@dataclass
class Result:
    """A subject's readings in one condition (`inside`) and in the seated rest before it (`rest`)."""

    recording: Recording
    rest: list[Reading]
    inside: list[Reading]


def beats(folder: Path) -> list[tuple[float, float]]:
    with open(folder / "rr.csv", newline="") as fh:
        return [(float(t), float(rr)) for t, rr in list(csv.reader(fh))[1:]]


def write_recording(root: Path, subject: str, condition: str, out: Path) -> Recording | None:
    """The protocol's CSV for one subject and condition (None when the condition is missing)."""
    if not (root / subject / condition / "rr.csv").is_file():
        return None
    rest, task = beats(root / subject / REST), beats(root / subject / condition)
    shift = rest[-1][0] + GAP_S - task[0][0]
    rows = rest + [(t + shift, rr) for t, rr in task]
    path = out / f"{subject}_{condition}.csv"
    path.write_text("beat_time_s,rr_ms\n" + "".join(f"{t:.4f},{rr:g}\n" for t, rr in rows))
    return Recording(
        subject, condition, path, rest[-1][0], task[0][0] + shift - task[0][1] / 1000.0, rows[-1][0]
    )


def analyze(path: Path, model: StressModel | None = None) -> list[Reading]:
    """The readings of `stresswatch analyze PATH --calibrate 0-2` (default configuration), with
    `model` instead of the configured person's when given."""
    cfg = configuration.load(None)
    pipe = Pipeline("me", cfg.processing.settings(), model or cfg.person("me").model())
    events = read_recording(path, "csv", person="me").events
    first = next(ev for ev in events if isinstance(ev, Beat))
    t0 = first.t - first.rr_ms / 1000.0
    pipe.calibration = (t0 + 60.0 * CALIBRATE_MIN[0], t0 + 60.0 * CALIBRATE_MIN[1])
    out: list[Reading] = []
    for k in range(0, len(events), CHUNK_EVENTS):
        out += pipe.feed_many(events[k : k + CHUNK_EVENTS])
    return out + pipe.finish()


def model_with(gate: Gate | None) -> StressModel:
    """The default person's model: as shipped (`SHIPPED`), without the RR-only gate (None), or
    with a gate of the --tradeoff grid."""
    model = configuration.load(None).person("me").model()
    if gate is None:
        model.rr_gate = None
    elif gate != SHIPPED:
        model.__class__ = GateVariant
        model.variant = gate
    return model


def result(rec: Recording, readings: list[Reading]) -> Result:
    return Result(
        rec,
        [r for r in readings if r.time <= rec.rest_end],
        [r for r in readings if r.time - WINDOW_S >= rec.start and r.time <= rec.end],
    )


class Study:
    """The protocol files of the chosen subjects (written once) and their results per variant."""

    def __init__(self, root: Path, subjects: list[str], folder: Path):
        self.recordings = [
            rec
            for s in subjects
            for c in CONDITIONS
            if (rec := write_recording(root, s, c, folder)) is not None
        ]
        self.subjects = subjects
        self._cache: dict = {}

    def results(self, gate: Gate | None) -> list[Result]:
        key = (gate, baseline_module.PRIOR_SAMPLES)
        if key not in self._cache:
            self._cache[key] = [result(rec, analyze(rec.path, model_with(gate))) for rec in self.recordings]
        return self._cache[key]


def share(readings: list[Reading], what: str) -> float | None:
    """The share of readings whose state or activity is `what`; "gated": activity and state
    `unknown` with a good signal (the RR-only gate: too active to judge)."""
    if not readings:
        return None
    if what == "gated":
        return sum(
            r.activity == "unknown" and r.ln_rmssd is not None and r.quality >= MIN_QUALITY for r in readings
        ) / len(readings)
    return sum(r.state == what or r.activity == what for r in readings) / len(readings)


def shares(results: list[Result], subjects: set[str] | None = None) -> dict[str, float | None]:
    """Pooled `stressed` share per condition (and the seated rest), over `subjects` (all: None)."""
    out: dict[str, float | None] = {}
    for cond in CONDITIONS:
        rs = [
            r
            for res in results
            if res.recording.condition == cond and (subjects is None or res.recording.subject in subjects)
            for r in res.inside
        ]
        out[cond] = share(rs, "stressed")
    rest = [
        r
        for res in _one_rest_each(results)
        if subjects is None or res.recording.subject in subjects
        for r in res.rest
    ]
    out[REST] = share(rest, "stressed")
    return out


def _one_rest_each(results: list[Result]) -> list[Result]:
    """One result per subject for the seated rest (every file repeats the same rest)."""
    seen, out = set(), []
    for res in results:
        if res.recording.subject not in seen:
            seen.add(res.recording.subject)
            out.append(res)
    return out


def _pct(v: float | None) -> str:
    return "    -" if v is None else f"{100 * v:5.0f}"


def report(study: Study) -> None:
    gated, ungated = study.results(SHIPPED), study.results(None)
    print(
        f"GUDB (Howell & Porr 2018), {study.subjects[0]}..{study.subjects[-1]}: seated rest (2 min, "
        f"declared as calibration), {GAP_S:.0f} s gap, one condition (2 min); readings whose "
        f"{WINDOW_S:.0f} s window lies inside it"
    )
    print(f"RR-only gate: {_name(SHIPPED)} (processing/stress.py RR_GATE)\n")
    print("condition  subject      n  HR  | gate: stressed% active% gated% | no gate: stressed% active%")
    for cond in CONDITIONS:
        for a, b in zip(gated, ungated):
            if a.recording.condition != cond:
                continue
            hr = statistics.median(r.hr_bpm for r in a.inside)
            print(
                f"{cond:10s} {a.recording.subject:11s} {len(a.inside):2d} {hr:4.0f} | "
                f"{_pct(share(a.inside, 'stressed'))}    {_pct(share(a.inside, 'active'))}  "
                f"{_pct(share(a.inside, 'gated'))} | "
                f"{_pct(share(b.inside, 'stressed'))}       {_pct(share(b.inside, 'active'))}"
            )
    print("\nseated rest (its own readings, scored against the finished calibration)")
    print("subject      readings scored  HR  | highest score | stressed%")
    for res in _one_rest_each(gated):
        scored = [r for r in res.rest if r.stress_score is not None]
        top = max((r.stress_score for r in scored), default=None)
        hr = statistics.median(r.hr_bpm for r in res.rest)
        print(
            f"{res.recording.subject:11s} {len(res.rest):9d} {len(scored):6d} {hr:4.0f} | "
            f"{'    -' if top is None else f'{top:5.1f}'}         | {_pct(share(res.rest, 'stressed'))}"
        )
    print("\nsummary (readings pooled over subjects)")
    print(
        "condition   median HR | gate: stressed% active% gated% mostly-stressed | no gate: stressed% active% "
        "mostly-stressed"
    )
    for cond in (REST, *CONDITIONS):
        row = [f"{cond:11s}"]
        for results in (gated, ungated):
            if cond == REST:
                per = [res.rest for res in _one_rest_each(results)]
            else:
                per = [res.inside for res in results if res.recording.condition == cond]
            pooled = [r for rs in per for r in rs]
            if results is gated:
                row.append(f"{statistics.median(r.hr_bpm for r in pooled):9.0f} |")
            most = sum((share(rs, "stressed") or 0) > 0.5 for rs in per)
            gated_pct = f"{_pct(share(pooled, 'gated'))}  " if results is gated else ""
            row.append(
                f"{_pct(share(pooled, 'stressed'))}    {_pct(share(pooled, 'active'))}  {gated_pct} "
                f"{most:2d} of {len(per):2d}       |"
            )
        print(" ".join(row).rstrip("|"))
    top = max((r.stress_score for res in gated for r in res.rest if r.stress_score is not None), default=None)
    print(f"\nhighest score of a seated-rest reading: {top:.1f} (goal: below 70)" if top is not None else "")


# -- item 4: the gate's trade-off -------------------------------------------------------------------


def gate_grid() -> list[Gate | None]:
    """The gates tried: an HR rise above rest (in bpm, in HR reserve or in the score's spreads),
    alone or with an lnRMSSD drop and/or a climbing HR; leaving at 0.7 of the entry (as the
    20/30 % HRR of the activity rule)."""
    rises = (
        [("bpm", x) for x in (5.0, 6.0, 8.0, 10.0, 12.0, 15.0)]
        + [("hrr", x) for x in (0.05, 0.06, 0.08, 0.10, 0.12)]
        + [("z", x) for x in (1.0, 1.25, 1.5, 2.0)]
    )
    return [None] + [
        Gate(unit, x, round(0.7 * x, 4), ln_drop, climb)
        for unit, x in rises
        for ln_drop in (None, 0.7, 0.5, 0.3)
        for climb in (None, 5.0)
    ]


def _name(gate: Gate | None) -> str:
    if gate is None:
        return NO_GATE
    extra = (f" or lnRMSSD drop {gate.ln_drop:g}" if gate.ln_drop is not None else "") + (
        f" or climb {gate.climb:g} bpm" if gate.climb is not None else ""
    )
    return f"rise {gate.enter:g} {gate.unit}{extra}"


def _false(s: dict[str, float | None]) -> float:
    """The worse of the walking and hand-bike `stressed` shares (false prompts)."""
    return max(v for k, v in s.items() if k in ("walking", "hand_bike") and v is not None)


def _extras(gate: Gate | None) -> int:
    return 0 if gate is None else (gate.ln_drop is not None) + (gate.climb is not None)


def most_maths(s: dict[str, float | None], gate: Gate | None) -> tuple:
    """Criterion (ours): walking and hand bike `stressed` <= 10 % and then the most maths; when
    no gate keeps both <= 10 %, the fewest false prompts. Ties: the simpler gate."""
    ok = _false(s) <= ACTIVITY_MAX_STRESSED + 1e-9
    return (ok, s["maths"] if ok else -_false(s), -_extras(gate))


def fewest_false(s: dict[str, float | None], gate: Gate | None) -> tuple:
    """Criterion (ours; the issue's "the point with fewer false prompts"): the fewest walking or
    hand-bike `stressed` readings, then the most maths. Ties: the simpler gate."""
    return (-round(_false(s), 6), s["maths"], -_extras(gate))


CRITERIA = {
    "fewest false prompts, then most maths (shipped)": fewest_false,
    "most maths with walking and hand bike <= 10 %": most_maths,
}


def choose(table: dict, subjects: set[str], criterion) -> Gate | None:
    return max(table, key=lambda gate: criterion(shares(table[gate], subjects), gate))


def tradeoff(study: Study) -> None:
    grid = gate_grid()
    table = {g: study.results(g) for g in grid}
    everyone = set(study.subjects)
    print(
        "\nRR-only gate: `stressed` share of readings on all subjects, per gate tried (rows: the rise alone, "
        "then with each extra)"
    )
    print(f"{'gate':44s} | maths walking hand_bike | seated rest")
    for g in grid:
        s = shares(table[g], everyone)
        mark = "  <- shipped" if g == SHIPPED else ""
        print(
            f"{_name(g):44s} | {_pct(s['maths'])} {_pct(s['walking'])}   {_pct(s['hand_bike'])}     | "
            f"{_pct(s[REST])}{mark}"
        )
    same = all(a.inside == b.inside for a, b in zip(table[SHIPPED], study.results(SHIPPED)))
    print(f"(the shipped gate through the grid's variant equals the product's rule: {same})")
    print("\nleave-one-subject-out: the gate chosen on the other subjects, applied to the one left out")
    for title, criterion in CRITERIA.items():
        held: dict[str, list[Reading]] = {c: [] for c in CONDITIONS}
        picks: Counter = Counter()
        for out in study.subjects:
            gate = choose(table, everyone - {out}, criterion)
            picks[_name(gate)] += 1
            for res in table[gate]:
                if res.recording.subject == out:
                    held[res.recording.condition] += res.inside
        print(
            f"{title}: held out "
            + ", ".join(f"{c} {_pct(share(held[c], 'stressed')).strip()} %" for c in CONDITIONS)
        )
        for name, n in picks.most_common():
            print(f"   picked in {n:2d} folds: {name}")
        print(f"   on all subjects: {_name(choose(table, everyone, criterion))}")


# -- item 5: the spread's shrinkage -----------------------------------------------------------------


def shrinkage(study: Study) -> None:
    print("\nShrinkage of a young baseline's spread (PRIOR_SAMPLES; 0 = the person's own spread alone)")
    print(
        "prior samples | highest seated-rest score, readings >= 70 | stressed%: maths walking hand_bike "
        "(no gate) | (gate)"
    )
    shipped = baseline_module.PRIOR_SAMPLES
    try:
        for d0 in (0, 5, 10, 20, 40):
            baseline_module.PRIOR_SAMPLES = d0
            row = []
            for gate in (None, SHIPPED):
                results = study.results(gate)
                s = shares(results, None)
                row.append(f"{_pct(s['maths'])} {_pct(s['walking'])} {_pct(s['hand_bike'])}")
            rest = [
                r.stress_score
                for res in _one_rest_each(study.results(None))
                for r in res.rest
                if r.stress_score is not None
            ]
            print(
                f"{d0:13d} | {max(rest):5.1f} {sum(x >= 70 for x in rest):3d} of {len(rest):3d}"
                f"{'':16s} | {row[0]}       | {row[1]}"
            )
    finally:
        baseline_module.PRIOR_SAMPLES = shipped


# -- item 6: the lnRMSSD weight ---------------------------------------------------------------------

WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def auc(pos: list[float], neg: list[float]) -> float | None:
    """Mann-Whitney AUC: P(pos > neg) + P(tie)/2."""
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def hrv_weight(study: Study, root: Path, folder: Path) -> None:
    """Does lnRMSSD earn weight next to heart rate (HR weight 1, as shipped)? Every reading with a
    scorable window (quality >= 0.5, a full RMSSD window) of the seated rest, maths and walking
    gets z = (HR - HR_ref)/SD_HR + w (lnRMSSD_ref - lnRMSSD)/SD_ln against the finished
    calibration (the seated rest analysed alone), whatever its activity: the question is what
    the score can tell apart, not what the gates let through. Per weight, each subject's AUC of z
    for maths against the seated rest and against walking; leaving each subject out, the weight
    with the best sum of the two mean AUCs on the others (means: with 5-6 readings a class,
    most subjects' AUCs are 0 or 1, and medians do not move) is applied to the one left out and
    compared with HR alone (w = 0), as the weight was chosen on Stress-Predict (issue 8)."""
    print(
        "\nlnRMSSD weight in the score: within-person AUC of maths readings vs the seated rest and vs "
        "walking (z against the finished calibration); medians over subjects"
    )
    readings = {(res.recording.subject, res.recording.condition): res for res in study.results(None)}
    data: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for s in study.subjects:
        model = model_with(None)
        analyze(_rest_only(root, s, folder), model)
        maths, walking = readings[(s, "maths")], readings[(s, "walking")]
        data[s] = {
            "rest": _deviations(model, [r for r in maths.rest if r.stress_score is not None]),
            "maths": _deviations(model, maths.inside),
            "walking": _deviations(model, walking.inside),
        }
    aucs: dict[float, dict[str, dict[str, float]]] = {}
    for w in WEIGHTS:
        aucs[w] = {"rest": {}, "walking": {}}
        for s, d in data.items():
            z = {k: [a + w * b for a, b in v] for k, v in d.items()}
            for name in ("rest", "walking"):
                if len(z["maths"]) >= 3 and len(z[name]) >= 3:
                    aucs[w][name][s] = auc(z["maths"], z[name])
        a, b = aucs[w]["rest"].values(), aucs[w]["walking"].values()
        print(
            f"weight {w:3.1f}: maths vs rest {statistics.median(a):.3f} (mean {statistics.mean(a):.3f}), "
            f"maths vs walking {statistics.median(b):.3f} (mean {statistics.mean(b):.3f}); {len(a)} subjects"
        )
    subjects = sorted(aucs[0.0]["rest"])
    picks: Counter = Counter()
    held: dict[str, dict[str, float]] = {"rest": {}, "walking": {}}
    for out in subjects:

        def crit(w: float, out: str = out) -> float:
            return sum(
                statistics.mean(a for s, a in aucs[w][k].items() if s != out) for k in ("rest", "walking")
            )

        best = max(WEIGHTS, key=lambda w: (crit(w), -w))
        picks[best] += 1
        for name, got in held.items():
            got[out] = aucs[best][name][out]
    for name, got in held.items():
        base = aucs[0.0][name]
        better = sum(got[s] > base[s] + 1e-9 for s in subjects)
        worse = sum(got[s] < base[s] - 1e-9 for s in subjects)
        print(
            f"leave-one-subject-out, maths vs {name}: held-out AUC median {statistics.median(got.values()):.3f}, "
            f"mean {statistics.mean(got.values()):.3f} vs HR alone {statistics.median(base.values()):.3f}, "
            f"{statistics.mean(base.values()):.3f}; better in {better}, worse in {worse} of {len(subjects)}"
        )
    print("weights picked: " + ", ".join(f"{w:g} in {n} folds" for w, n in picks.most_common()))


def _deviations(model: StressModel, readings: list[Reading]) -> list[tuple[float, float]]:
    """(z_HR, z_lnRMSSD) of the readings with a scorable window, against `model`'s baseline."""
    out = []
    for r in readings:
        if r.ln_rmssd is not None and r.quality >= MIN_QUALITY:
            ref = model.baseline.reference(r.time)
            out.append(
                ((r.hr_bpm - ref.hr_mean) / ref.hr_sd, (ref.ln_rmssd_mean - r.ln_rmssd) / ref.ln_rmssd_sd)
            )
    return out


def _rest_only(root: Path, subject: str, folder: Path) -> Path:
    rows = beats(root / subject / REST)
    path = folder / f"{subject}_{REST}.csv"
    path.write_text("beat_time_s,rr_ms\n" + "".join(f"{t:.4f},{rr:g}\n" for t, rr in rows))
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog="Data: $STRESSWATCH_REFERENCE_DATA/stress/gudb"
    )
    p.add_argument(
        "--tradeoff",
        action="store_true",
        help="the RR-only gate's parameters, chosen leaving each subject out",
    )
    p.add_argument(
        "--shrinkage", action="store_true", help="the young baseline's spread against the seated rest"
    )
    p.add_argument("--hrv-weight", action="store_true", help="does lnRMSSD earn weight in the score?")
    p.add_argument("--subjects", nargs="+", metavar="NN", help="subject numbers (default 00-12)")
    args = p.parse_args(argv)
    root = Path(os.environ.get("STRESSWATCH_REFERENCE_DATA", "../shared/data")) / "stress/gudb"
    if not (root / "subject_00" / REST / "rr.csv").is_file():
        print(
            f"no GUDB recordings at {root}: set STRESSWATCH_REFERENCE_DATA to the reference data folder "
            "(../shared/data)",
            file=sys.stderr,
        )
        return 2
    subjects = [f"subject_{int(n):02d}" for n in args.subjects] if args.subjects else SUBJECTS
    with tempfile.TemporaryDirectory() as folder:
        study = Study(root, subjects, Path(folder))
        if not (args.tradeoff or args.shrinkage or args.hrv_weight):
            report(study)
        if args.tradeoff:
            tradeoff(study)
        if args.shrinkage:
            shrinkage(study)
        if args.hrv_weight:
            hrv_weight(study, root, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
