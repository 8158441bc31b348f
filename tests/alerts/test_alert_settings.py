"""Alert settings: documented defaults, and one clear error naming the key for anything wrong."""

from __future__ import annotations

import pytest
from alerts_world import T0, minutes, run, stressed

from alerts.engine import AlertEngine
from alerts.settings import AlertSettings


def test_the_defaults_are_the_documented_ones():
    s = AlertSettings()
    assert (s.acute_n_min, s.acute_m_min, s.cooldown_min, s.daily_cap) == (10, 15, 90, 3)
    assert (s.warmup_days, s.baseline_days, s.swc_sd, s.week_min_valid) == (14, 60, 0.5, 3)
    assert s.quiet_hours == ("22:00", "07:30") and s.sleep_window == ("23:00", "07:00")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"quiet_hours": ("22:00", "7.30")}, "quiet_hours: expected a time as HH:MM, got '7.30'"),
        ({"sleep_window": ("25:00", "07:00")}, "sleep_window: '25:00' is not a time of day"),
        ({"quiet_hours": "22:00"}, "quiet_hours: expected [start, end]"),
        ({"session_time": "23:00"}, "session_time: 23:00 is inside quiet_hours"),
        ({"acute_n_min": 20}, "acute_n_min: must be > 0 and <= acute_m_min"),
        ({"daily_cap": -1}, "daily_cap: must be >= 0"),
        ({"load_days": (6, 5)}, "load_days: expected [n, m]"),
        ({"load_days": (3,)}, "load_days: expected [n, m] with 0 < n <= m, got [3]"),
        ({"explore": 2}, "explore: must be between 0 and 1"),
        ({"acute_exercises": ("yoga",)}, "acute_exercises: unknown exercise ['yoga']"),
    ],
)
def test_a_bad_setting_is_named_in_a_one_line_error(changes, message):
    with pytest.raises(ValueError) as err:
        AlertSettings(**changes)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_settings_round_trip_through_plain_data_and_unknown_keys_are_named():
    s = AlertSettings(quiet_hours=("21:00", "08:00"), acute_exercises=("box breathing",))
    assert AlertSettings.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="^cooldown: unknown alert setting$"):
        AlertSettings.from_dict({"cooldown": 30})


def test_an_exercise_defined_in_the_settings_is_offered_with_its_instructions():
    hum = {
        "name": "humming",
        "inhale_s": 4,
        "hold_in_s": 0,
        "exhale_s": 8,
        "hold_out_s": 0,
        "cycles": 25,
        "instructions": "Breathe in for 4 seconds, hum softly while breathing out for 8 seconds.",
    }
    s = AlertSettings(extra_exercises=[hum], acute_exercises=["humming"])
    assert AlertSettings.from_dict(s.to_dict()) == s
    eng = AlertEngine("p", s)
    (p,) = [
        o
        for o in run(eng, minutes(T0 + 9 * 3600, 30) + minutes(T0 + 9.5 * 3600, 10, stressed))
        if hasattr(o, "exercise")
    ]
    assert p.exercise.name == "humming" and p.exercise.breaths_per_min == 5.0 and p.exercise.duration_s == 300
    with pytest.raises(
        ValueError, match=r"^extra_exercises: exercise 'humming': cycles must be a whole number >= 1$"
    ):
        AlertSettings(extra_exercises=[{**hum, "cycles": 0}])
    with pytest.raises(
        ValueError, match=r"^extra_exercises: exercise 'humming': missing \['instructions'\], unknown \[\]$"
    ):
        AlertSettings(extra_exercises=[{k: v for k, v in hum.items() if k != "instructions"}])
