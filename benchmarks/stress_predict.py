"""Benchmark of the stress score on real people (Stress-Predict, S01-S17); prints figures, asserts nothing.

Data: Iqbal et al. 2022, "Stress-Predict Dataset", Sensors 22:8135 (MIT licence), Empatica E4
wrist IBI (gappy), a 60 min protocol per subject: baseline, Stroop test, relax, interview,
relax, hyperventilation, relax. `time_logs.csv` gives each phase's local start and end (Irish
time = UTC in February; afternoon sessions are written on a 12-hour clock, so hours before 08
are read as p.m.).

Protocol (issue 8): each subject's IBI.csv goes through the same pipeline as
`stresswatch analyze --format ibi --json` at default settings (default configuration, 60 s
RMSSD window, a reading every 10 s). A reading is labelled by its last 60 s: `task` when they
lie inside a Stroop, interview or hyperventilation phase, `relax` inside one of the three relax
phases; readings that straddle a boundary are dropped. Per subject: readings per class, null
scores and why, and on the readings with a score the AUC (task vs relax) of the stress score,
of heart rate alone and of -lnRMSSD alone, and the share of `stressed` readings per class. A
subject is scorable when it has >= 5 scored readings in each class.

Two modes: `new` (a new user, no prior data) and `established` (calibrated on that subject's
own first baseline phase, as `analyze --calibrate START-END` does). Per task, the same figures
with one task's readings against all relax readings. Each mode is reported twice: relax = the
three relax phases, and relax = those and the baseline phase (it is rest too; issue 17: counted
as relax, the young baseline's swings showed).

With --hrv-variants: instead, the search for an lnRMSSD term and the respiration feasibility
check (issue 8; `hrv_variants`, `respiration`).

Usage: STRESSWATCH_REFERENCE_DATA=/work/shared/data python benchmarks/stress_predict.py [--hrv-variants] [S01 ...]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

# This folder holds a file named like the `processing` package; keep it off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.options import parser, reference_data
from collector.files import read_recording
from processing.pipeline import Pipeline, Settings
from processing.reading import Reading
from processing.stress import StressModel
from stresswatch import config as configuration

SUBJECTS = [f"S{k:02d}" for k in range(1, 18)]
# Column pairs of time_logs.csv (0-based start column) and what each phase is.
PHASES = {
    6: "baseline",
    8: "stroop",
    10: "relax1",
    12: "interview",
    14: "relax2",
    16: "hyperventilation",
    18: "relax3",
}
TASKS = ("stroop", "interview", "hyperventilation")
RELAX = ("relax1", "relax2", "relax3")
RELAX_AND_BASELINE = ("baseline", *RELAX)
LABEL_S = 60.0
MIN_PER_CLASS = 5


def phase_times(root: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """{subject: {phase: (start, end) unix s}} from time_logs.csv."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    with open(root / "time_logs.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    for row in rows[2:]:
        if not row or not row[0].startswith("S"):
            continue
        day = datetime.strptime(row[-1].split()[0], "%Y-%m-%d").replace(tzinfo=UTC)
        out[row[0]] = {name: (_at(day, row[col]), _at(day, row[col + 1])) for col, name in PHASES.items()}
    return out


def _at(day: datetime, cell: str) -> float:
    """Unix time of a time_logs.csv clock time on `day`."""
    h, m, s = (int(x) for x in cell.split(":"))
    if h < 8:  # 12-hour clock for afternoon sessions
        h += 12
    return day.timestamp() + 3600 * h + 60 * m + s


def label(r: Reading, phases: dict[str, tuple[float, float]]) -> str | None:
    lo = r.time - LABEL_S
    for name, (start, end) in phases.items():
        if start <= lo and r.time <= end:
            return name
    return None


def auc(pos: list[float], neg: list[float]) -> float | None:
    """Mann-Whitney AUC: P(pos > neg) + P(tie)/2."""
    if not pos or not neg:
        return None
    allv = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
    ranks = [0.0] * len(allv)
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1][0] == allv[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2.0 + 1.0
        i = j + 1
    rank_pos = sum(rk for rk, (_, c) in zip(ranks, allv) if c)
    n1, n0 = len(pos), len(neg)
    return (rank_pos - n1 * (n1 + 1) / 2.0) / (n1 * n0)


@dataclass
class Result:
    subject: str
    readings: dict[str, list[Reading]] = field(default_factory=dict)  # phase -> readings
    nulls: Counter = field(default_factory=Counter)
    stream: list[Reading] = field(default_factory=list)  # every reading, in time order

    def cls(self, names: tuple[str, ...]) -> list[Reading]:
        return [r for n in names for r in self.readings.get(n, [])]


def run_subject(
    root: Path,
    subject: str,
    phases: dict[str, tuple[float, float]],
    established: bool,
    variant: dict | None = None,
) -> Result:
    rec = read_recording(root / subject / "IBI.csv", "ibi", person=subject)
    cfg = configuration.load(None)
    model = cfg.person(subject).model() if _has_person(cfg, subject) else cfg.people[0].model()
    if variant is not None:
        model.__class__ = HrvVariant
        model.variant = variant
    calibration = phases["baseline"] if established else None
    pipe = Pipeline(subject, Settings(), model, calibration=calibration)
    res = Result(subject)
    readings: list[Reading] = []
    for ev in rec.events:
        readings += pipe.feed(ev)
    readings += pipe.finish()
    res.stream = readings
    for r in readings:
        name = label(r, phases)
        if name is None:
            continue
        res.readings.setdefault(name, []).append(r)
        if r.stress_score is None and name != "baseline":
            res.nulls[_why_null(r)] += 1
    return res


def _has_person(cfg, name: str) -> bool:
    return any(p.name == name for p in cfg.people)


def _why_null(r: Reading) -> str:
    if r.activity == "active":
        return "active"
    if r.activity == "unknown" and r.ln_rmssd is not None and r.quality >= 0.5:
        return "gated"  # the RR-only gate (processing/stress.py RR_GATE)
    return "quality"


@dataclass
class Figures:
    n_task: int
    n_relax: int
    auc_score: float | None
    auc_hr: float | None
    auc_ln: float | None
    stressed_task: float | None
    stressed_relax: float | None

    @property
    def scorable(self) -> bool:
        return self.n_task >= MIN_PER_CLASS and self.n_relax >= MIN_PER_CLASS


def figures(task: list[Reading], relax: list[Reading]) -> Figures:
    t = [r for r in task if r.stress_score is not None]
    x = [r for r in relax if r.stress_score is not None]
    f = Figures(len(t), len(x), None, None, None, None, None)
    if not f.scorable:
        return f
    f.auc_score = auc([r.stress_score for r in t], [r.stress_score for r in x])
    f.auc_hr = auc([r.hr_bpm for r in t], [r.hr_bpm for r in x])
    f.auc_ln = auc([-r.ln_rmssd for r in t], [-r.ln_rmssd for r in x])
    f.stressed_task = sum(r.state == "stressed" for r in t) / len(t)
    f.stressed_relax = sum(r.state == "stressed" for r in x) / len(x)
    return f


def _fmt(v: float | None, pct: bool = False, digits: int = 2) -> str:
    if v is None:
        return "    -"
    return f"{100 * v:5.0f}" if pct else f"{v:5.{digits}f}"


def _median(vals: list[float | None]) -> float | None:
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def report(results: list[Result], mode: str, relax_names: tuple[str, ...] = RELAX) -> None:
    print(f"\n== {mode}; relax = {', '.join(relax_names)} ==")
    print(
        "subject  task relax | labelled  null(quality, active, gated) | AUC score   HR -lnRMSSD | "
        "stressed% task relax"
    )
    rows: list[Figures] = []
    for res in results:
        task, relax = res.cls(TASKS), res.cls(relax_names)
        f = figures(task, relax)
        rows.append(f)
        labelled = len(res.cls(TASKS)) + len(res.cls(RELAX))
        null = sum(res.nulls.values())
        print(
            f"{res.subject:7s} {f.n_task:5d} {f.n_relax:5d} | {labelled:8d} {null:5d} ({res.nulls['quality']:4d}, "
            f"{res.nulls['active']:4d}, {res.nulls['gated']:4d}) | {_fmt(f.auc_score)} {_fmt(f.auc_hr)} "
            f"{_fmt(f.auc_ln)}    | {_fmt(f.stressed_task, True)} {_fmt(f.stressed_relax, True)}"
        )
    ok = [f for f in rows if f.scorable]
    labelled = sum(len(r.cls(TASKS)) + len(r.cls(RELAX)) for r in results)
    nulls = sum(sum(r.nulls.values()) for r in results)
    print(
        f"scorable subjects: {len(ok)} of {len(rows)}; null scores {nulls} of {labelled} task and relax1-3 "
        "readings"
    )
    print(
        f"median   {'':11s} | {'':30s} | {_fmt(_median([f.auc_score for f in ok]), digits=3)} "
        f"{_fmt(_median([f.auc_hr for f in ok]), digits=3)} {_fmt(_median([f.auc_ln for f in ok]), digits=3)}  | "
        f"{_fmt(_median([f.stressed_task for f in ok]), True)} {_fmt(_median([f.stressed_relax for f in ok]), True)}"
    )
    worse = sum(f.auc_score < f.auc_hr for f in ok)
    print(f"score AUC below HR-alone AUC in {worse} of {len(ok)} scorable subjects")
    relax = [r for res in results for r in res.cls(relax_names) if r.stress_score is not None]
    if relax:
        print(
            f"stressed in relax, all scored relax readings pooled: {100 * sum(r.state == 'stressed' for r in relax) / len(relax):.1f} %"
            f" of {len(relax)}"
        )
    print("per task (that task's readings vs all relax readings; medians over scorable subjects):")
    print("task              subjects | AUC score   HR -lnRMSSD | stressed% task")
    for task_name in TASKS:
        fs = [figures(res.cls((task_name,)), res.cls(relax_names)) for res in results]
        fs = [f for f in fs if f.scorable]
        print(
            f"{task_name:17s} {len(fs):8d} | {_fmt(_median([f.auc_score for f in fs]))} "
            f"{_fmt(_median([f.auc_hr for f in fs]))} {_fmt(_median([f.auc_ln for f in fs]))}    | "
            f"{_fmt(_median([f.stressed_task for f in fs]), True)}"
        )


def acute_prompts(results: list[Result], phases: dict[str, dict[str, tuple[float, float]]]) -> None:
    """Issue 9: would the alert engine's acute rule have fired during a task, and during relax?

    Each subject's readings (established user) go through a fresh `AlertEngine` (local time =
    UTC: Irish time in February). "Fired" counts a prompt sent and a firing the policy held back
    (cooldown, cap): the rule's verdict, whatever the policy did with it; it is placed in the
    phase that holds it. Run with the defaults (>= 10 of the last 15 min stressed at rest, meant
    for sustained stress such as a long meeting) and, as a sensitivity check that is not the
    default, with 5 of the last 10 min: this protocol's tasks last 6, 10 and 2 min, 5 min of
    relax apart, and the wrist device records part of each minute."""
    from alerts.engine import AlertEngine, Decision
    from alerts.prompt import Prompt
    from alerts.settings import AlertSettings

    for title, settings in (
        ("defaults: >= 10 of the last 15 min", AlertSettings()),
        (
            "sensitivity, not the default: >= 5 of the last 10 min",
            AlertSettings(acute_n_min=5.0, acute_m_min=10.0),
        ),
    ):
        print(f"\nAcute prompts, established user ({title} stressed at rest)")
        print(
            f"{'subject':8s} {'most stressed min in 15':>24s}  {'fired in task':28s} {'fired in relax':16s} first sent"
        )
        good = judged = 0
        for res in results:
            engine = AlertEngine(res.subject, settings)
            fired: list[tuple[float, str]] = []
            for r in res.stream:
                for out in engine.feed(r):
                    if isinstance(out, Prompt):
                        fired.append((out.time, "sent"))
                    elif isinstance(out, Decision) and out.what == "suppressed":
                        fired.append((out.time, "held"))
            where = [
                (next((n for n, (a, b) in phases[res.subject].items() if a <= t <= b), "between"), how)
                for t, how in fired
            ]
            in_task = sorted({n for n, _ in where if n in TASKS})
            in_relax = sorted({n for n, _ in where if n in RELAX})
            first = next((n for n, how in where if how == "sent"), "-")
            judged += 1
            good += bool(in_task) and not in_relax
            print(
                f"{res.subject:8s} {_most_stressed_minutes(res.stream):>24.1f}  {', '.join(in_task) or '-':28s} "
                f"{', '.join(in_relax) or '-':16s} {first}"
            )
        print(f"subjects with a firing in a task and none in relax: {good} of {judged}")


def _most_stressed_minutes(stream: list[Reading], window_s: float = 900.0) -> float:
    """The most minutes of `stressed` readings (10 s each) in any 15 min: what the rule can see."""
    times = [r.time for r in stream if r.state == "stressed"]
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best * 10.0 / 60.0


class HrvVariant(StressModel):
    """A candidate lnRMSSD term for the --hrv-variants search (issue 8); HR term as shipped.

    variant: w (weight of the lnRMSSD deviation), smooth_s (the deviation uses the median
    lnRMSSD of the scored readings of the last smooth_s, 0 = this window's alone), q (the
    deviation is multiplied by quality**q: shrunk toward 0 when the window has few valid pairs),
    rule "lin" (z_HR + w z_ln) or "agree" (w z_ln is added only when it agrees in sign with z_HR).
    The baseline still learns each window's own lnRMSSD."""

    variant: dict

    def deviation(
        self, time: float, hr_bpm: float, ln_rmssd: float, quality: float, declared: bool = False
    ) -> float:
        v = self.variant
        recent = self.__dict__.setdefault("_recent_ln", [])
        recent.append((time, ln_rmssd))
        while recent[0][0] < time - v["smooth_s"]:
            recent.pop(0)
        ref = self.baseline.reference(time) if declared else self.baseline.score_reference(time)
        z_hr = (hr_bpm - ref.hr_mean) / ref.hr_sd
        ln = statistics.median(x for _, x in recent) if v["smooth_s"] else ln_rmssd
        z_ln = (ref.ln_rmssd_mean - ln) / ref.ln_rmssd_sd * min(1.0, quality) ** v["q"]
        if v["rule"] == "agree" and z_hr * z_ln <= 0:
            return z_hr
        return z_hr + v["w"] * z_ln


HR_ONLY = {"rule": "lin", "w": 0.0, "smooth_s": 0.0, "q": 0}
VARIANTS = [HR_ONLY] + [
    {"rule": rule, "w": w, "smooth_s": sm, "q": q}
    for rule in ("lin", "agree")
    for w in (0.3, 0.5, 0.7)
    for sm in (0.0, 300.0, 600.0)
    for q in (0, 4)
]


def hrv_variants(root: Path, subjects: list[str], phases: dict[str, dict[str, tuple[float, float]]]) -> None:
    """Issue 8: does an lnRMSSD term earn a place next to heart rate? Every VARIANTS entry is run
    in both modes; leaving each subject out in turn, the variant with the best mean (over the
    two modes) median score AUC on the other subjects is applied to the one left out. Prints
    each variant's medians and the held-out (leave-one-subject-out) AUCs against HR only."""
    aucs: dict[int, dict[str, dict[str, float]]] = {}
    print("\nHRV term variants (medians over scorable subjects; stressed% = established user)")
    print("rule    w  smooth_s  q | AUC new   est | stressed% task relax")
    for i, v in enumerate(VARIANTS):
        aucs[i] = {}
        for mode in ("new", "est"):
            per = {}
            for s in subjects:
                res = run_subject(root, s, phases[s], mode == "est", v)
                per[s] = figures(res.cls(TASKS), res.cls(RELAX))
            aucs[i][mode] = {s: f.auc_score for s, f in per.items() if f.scorable}
            if mode == "est":
                ok = [f for f in per.values() if f.scorable]
                st_task = _median([f.stressed_task for f in ok])
                st_relax = _median([f.stressed_relax for f in ok])
        print(
            f"{v['rule']:6s} {v['w']:3.1f} {v['smooth_s']:9.0f} {v['q']:2d} | "
            f"{_fmt(_median(list(aucs[i]['new'].values())), digits=3)} "
            f"{_fmt(_median(list(aucs[i]['est'].values())), digits=3)} | "
            f"{_fmt(st_task, True)} {_fmt(st_relax, True)}",
            flush=True,
        )
    scored = sorted(aucs[0]["new"])
    for mode in ("new", "est"):
        held, picks = {}, Counter()
        for out in scored:

            def crit(i: int, out: str = out) -> float:
                return sum(
                    statistics.median(a for s, a in aucs[i][m].items() if s != out) for m in ("new", "est")
                )

            best = max(aucs, key=crit)
            picks[best] += 1
            held[out] = aucs[best][mode][out]
        base = aucs[0][mode]
        better = sum(held[s] > base[s] + 1e-9 for s in scored)
        worse = sum(held[s] < base[s] - 1e-9 for s in scored)
        print(
            f"leave-one-subject-out, {mode}: held-out median AUC {statistics.median(held.values()):.3f} "
            f"vs HR only {statistics.median(base.values()):.3f}; better in {better}, worse in {worse} of "
            f"{len(scored)}; mean difference {statistics.mean(held[s] - base[s] for s in scored):+.4f}"
        )
        for i, n in picks.most_common():
            print(f"   picked in {n:2d} folds: {VARIANTS[i]}")


def respiration_hz(
    times: list[float], rrs: list[float], paired: list[bool], min_run_s: float
) -> float | None:
    """Breathing rate (Hz) as the highest peak of the RR spectrum in 0.10-0.50 Hz (6-30 breaths
    per minute), from the last gap-free run of beats if it spans >= min_run_s (the spectral
    RSA method of Schafer & Kratky 2008, Ann Biomed Eng 36:476, doi:10.1007/s10439-007-9428-1):
    RR linearly resampled at 4 Hz, linear trend removed, Hann window. A feasibility check for
    issue 8 (can the score discount RMSSD changes that breathing explains?), not a product metric."""
    k = len(times) - 1
    while k > 0 and paired[k]:
        k -= 1
    t, rr = np.array(times[k:]), np.array(rrs[k:])
    if len(t) < 10 or t[-1] - t[0] < min_run_s:
        return None
    x = np.arange(t[0], t[-1], 0.25)
    y = np.interp(x, t, rr)
    y = (y - np.polyval(np.polyfit(x, y, 1), x)) * np.hanning(len(y))
    freqs = np.fft.rfftfreq(1024, 0.25)
    power = np.abs(np.fft.rfft(y, 1024)) ** 2
    band = (freqs >= 0.10) & (freqs <= 0.50)
    return float(freqs[band][np.argmax(power[band])])


def respiration(root: Path, subjects: list[str], phases: dict[str, dict[str, tuple[float, float]]]) -> None:
    """How many labelled readings a respiration estimate exists for on this wrist data, and where
    it lands (a peak within 0.02 Hz of the band's lower edge is drift or Mayer waves, not breath)."""
    cfg = configuration.load(None)
    print("\nRespiration from the RR spectrum (last gap-free run of the 300 s window)")
    for min_run in (30.0, 40.0):
        total = estimated = edge = 0
        for subject in subjects:
            rec = read_recording(root / subject / "IBI.csv", "ibi", person=subject)
            pipe = Pipeline(subject, Settings(), cfg.people[0].model())
            for ev in rec.events:
                for r in pipe.feed(ev):
                    if label(r, phases[subject]) not in TASKS + RELAX:
                        continue
                    total += 1
                    times, rrs, paired = pipe.window()
                    f = respiration_hz(times.tolist(), rrs.tolist(), paired.tolist(), min_run)
                    estimated += f is not None
                    edge += f is not None and f < 0.12
        print(
            f"gap-free run >= {min_run:.0f} s: an estimate for {estimated} of {total} labelled readings, "
            f"{edge} of them at the 0.10-0.12 Hz band edge"
        )


def _subject(text: str) -> str:
    if text not in SUBJECTS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of S01-S17")
    return text


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument(
        "subjects", nargs="*", metavar="SUBJECT", type=_subject, help="subjects to run (default: S01-S17)"
    )
    ap.add_argument(
        "--hrv-variants",
        action="store_true",
        help="the lnRMSSD-term search and the respiration check instead",
    )
    args = ap.parse_args()
    root = reference_data("stress/stress_predict/time_logs.csv") / "stress/stress_predict"
    subjects = args.subjects or SUBJECTS
    phases = phase_times(root)
    if args.hrv_variants:
        hrv_variants(root, subjects, phases)
        respiration(root, subjects, phases)
        return
    print(
        f"Stress-Predict (Iqbal et al. 2022), subjects {subjects[0]}-{subjects[-1]}: "
        f"task = {', '.join(TASKS)}; relax = the three relax phases; reading labelled by its last {LABEL_S:.0f} s"
    )
    for mode, established in (
        ("new user (no prior data)", False),
        ("established user (calibrated on own baseline phase)", True),
    ):
        results = [run_subject(root, s, phases[s], established) for s in subjects]
        report(results, mode)
        report(results, mode, RELAX_AND_BASELINE)
    acute_prompts(results, phases)


if __name__ == "__main__":
    main()
