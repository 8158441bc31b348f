"""A pipeline rebuilt from its snapshot (what a Kafka worker keeps per person) goes on exactly as the original."""

from __future__ import annotations

import json

import pytest

from collector.events import Gap
from processing.baseline import Baseline
from processing.pipeline import Pipeline, Settings
from processing.stress import StressModel
from stresswatch.sources import simulated_day, simulated_phone

# The demo day's first 40 minutes: rest, work stress, paced breathing; with artifacts to correct.
BEATS, _ = simulated_day(seed=3, artifacts=0.01, person="p")
EVENTS = BEATS[:3200]
# A strap that lost contact for 20 s, so the snapshot also crosses a gap.
EVENTS = [
    *EVENTS[:1500],
    Gap("p", "simulator", EVENTS[1499].t, EVENTS[1499].t + 20.0, "no contact"),
    *[b for b in EVENTS[1500:] if b.t > EVENTS[1499].t + 20.0],
]


# The same with the phone's activity once a minute (still, then the walk to the gym
# that begins at minute 37), as a Kafka
# worker gets it in the beats message.
WITH_PHONE = sorted(
    [*EVENTS, *(m for m in simulated_phone("p") if m.t <= EVENTS[-1].t)],
    key=lambda e: e.t if hasattr(e, "t") else e.start,
)


def readings(split_at: int | None, events: list = EVENTS) -> list:
    p = Pipeline("p", Settings(), StressModel())
    out = []
    for k, e in enumerate(events):
        if k == split_at:
            snap = json.loads(json.dumps(p.snapshot()))  # as stored: JSON
            model = StressModel(baseline=Baseline.from_dict(snap["baseline"]))
            p = Pipeline.restored(snap, "p", Settings(), model)
        out += p.feed(e)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("split_at", [40, 1501, 2777])
def test_readings_after_a_rebuild_from_the_snapshot_equal_an_uninterrupted_run(split_at):
    uninterrupted = readings(None)
    rebuilt = readings(split_at)
    assert len(uninterrupted) > 150
    assert rebuilt == uninterrupted  # every field, to the bit (LF/HF's incremental spline included)


def test_the_motion_track_travels_in_the_snapshot():
    uninterrupted = readings(None, WITH_PHONE)
    rebuilt = readings(1800, WITH_PHONE)
    assert {r.motion for r in uninterrupted} == {"still", "moving"}  # the phone's words reached the readings
    assert rebuilt == uninterrupted


def test_a_snapshot_is_refused_while_readings_wait():
    p = Pipeline("p", Settings.whole())
    with pytest.raises(ValueError, match="between feeds of a live pipeline"):
        p.snapshot()
