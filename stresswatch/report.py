"""Human output of readings: a live line, summary tables and the PNG plot of the demo."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from processing.reading import MotionState, Reading


@dataclass(frozen=True)
class Span:
    """A labelled stretch of time (a simulated phase), for summaries and plot shading."""

    name: str
    start: float
    end: float
    kind: str = ""


def _fmt(x: float | None, spec: str) -> str:
    """`x` formatted by `spec`, or "-" in the same width."""
    return format("-", f">{spec.split('.')[0]}") if x is None else format(x, spec)


def live_line(r: Reading, t0: float, label: str = "") -> str:
    """One line per reading: elapsed time, phase, HR, RMSSD, LF/HF, score, state, activity, and
    why there is no HRV when the reading has none, and the motion when a motion source said something."""
    el = int(r.time - t0)
    return (
        f"{el // 3600:02d}:{el % 3600 // 60:02d}:{el % 60:02d}  {label:<14.14s} "
        f"HR {_fmt(r.hr_bpm, '5.1f')}  RMSSD {_fmt(r.rmssd_ms, '5.1f')} ms  "
        f"LF/HF {_fmt(r.lf_hf, '5.2f')}  score {_fmt(r.stress_score, '5.1f')}  "
        f"{r.state:<8s} {r.activity:<8s} "
        + (
            f"no HRV: {r.hrv_unavailable}"
            if r.hrv_unavailable
            else f"artifacts {_fmt(r.artifact_pct, '4.1f')}%"
        )
        + ("" if r.motion == MotionState.UNKNOWN else f"  motion {r.motion}")
    )


HEADER = (
    f"{'':<14s} {'min':>5s} {'HR':>6s} {'RMSSD':>6s} {'SDNN':>6s} {'LF/HF':>6s} "
    f"{'SI':>5s} {'score':>6s}  {'state (share of readings)':<34s} {'activity':<10s}"
)


def summary_table(readings: list[Reading], spans: list[Span]) -> str:
    """A row per span: duration, mean HR, RMSSD, SDNN, LF/HF, stress index, score, states."""
    lines = [HEADER, "-" * len(HEADER)]
    for sp in spans:
        rows = [r for r in readings if sp.start <= r.time < sp.end]
        if not rows:
            continue
        lines.append(_row(sp.name, (sp.end - sp.start) / 60.0, rows))
    return "\n".join(lines)


def _mean(rows: list[Reading], name: str) -> float | None:
    vals = [getattr(r, name) for r in rows if getattr(r, name) is not None]
    return statistics.fmean(vals) if vals else None


def _row(name: str, minutes: float, rows: list[Reading]) -> str:
    states = Counter(r.state for r in rows)
    share = " ".join(f"{s} {100 * n / len(rows):.0f}%" for s, n in states.most_common(3))
    activity = Counter(r.activity for r in rows).most_common(1)[0][0]
    return (
        f"{name:<14.14s} {minutes:5.1f} {_fmt(_mean(rows, 'hr_bpm'), '6.1f')} "
        f"{_fmt(_mean(rows, 'rmssd_ms'), '6.1f')} {_fmt(_mean(rows, 'sdnn_ms'), '6.1f')} "
        f"{_fmt(_mean(rows, 'lf_hf'), '6.2f')} {_fmt(_mean(rows, 'stress_index'), '5.1f')} "
        f"{_fmt(_mean(rows, 'stress_score'), '6.1f')}  {share:<34s} {activity:<10s}"
    )


def plot(
    readings: list[Reading], spans: list[Span], path: str, title: str, marks: list[tuple[float, str]] = ()
) -> str:
    """Save a PNG of HR, RMSSD and stress score over time with the spans shaded and `marks`
    (time, label: the prompts) drawn as labelled vertical lines; return path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = readings[0].time if readings else 0.0
    minutes = [(r.time - t0) / 60.0 for r in readings]
    fig, axes = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True, constrained_layout=True)
    series = [
        ("hr_bpm", "heart rate (bpm)", "tab:red"),
        ("rmssd_ms", "RMSSD (ms, 60 s)", "tab:blue"),
        ("stress_score", "stress score (0-100)", "tab:purple"),
    ]
    colours = {"rest": "#dff0d8", "stress": "#f8d7da", "active": "#fff3cd", "recovery": "#d1ecf1"}
    for ax, (name, label, colour) in zip(axes, series):
        ys = [getattr(r, name) for r in readings]
        ax.plot(minutes, [float("nan") if y is None else y for y in ys], color=colour, lw=1.4)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        for sp in spans:
            ax.axvspan(
                (sp.start - t0) / 60.0, (sp.end - t0) / 60.0, color=colours.get(sp.kind, "#eeeeee"), lw=0
            )
    axes[2].set_ylim(-3, 103)
    axes[2].axhline(70, color="grey", ls="--", lw=0.8)
    for sp in spans:
        mid = ((sp.start + sp.end) / 2 - t0) / 60.0
        axes[0].text(mid, 1.02, sp.name, transform=axes[0].get_xaxis_transform(), ha="center", fontsize=8)
    for t, label in marks:
        x = (t - t0) / 60.0
        for ax in axes:
            ax.axvline(x, color="black", lw=1.0, ls=":")
        axes[2].text(x, 0.97, " " + label, transform=axes[2].get_xaxis_transform(), fontsize=8, va="top")
    axes[2].set_xlabel("minutes")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
