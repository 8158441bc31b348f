"""The `Prompt`: a breathing-exercise suggestion sent to the user's phone (a JSON contract)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum


class PromptKind(StrEnum):
    """Why a prompt was sent: a sustained stress spike, a pattern over days, or a set time."""

    ACUTE = "acute"
    CHRONIC = "chronic"
    SCHEDULED = "scheduled"


class PromptAction(StrEnum):
    """A phone's answer to a prompt (`<person>/prompt/response`)."""

    DONE = "done"
    SNOOZE = "snooze"
    DISMISS = "dismiss"
    NOT_STRESSED = "not_stressed"  # the person says the engine was wrong


KINDS = tuple(PromptKind)
ACTIONS = tuple(PromptAction)


@dataclass(frozen=True)
class Exercise:
    """A paced-breathing pattern; durations in seconds.

    Default: resonance breathing at 6 breaths/min (5 s in, 5 s out, 5 minutes), which maximises the
    heart-rate oscillation and baroreflex gain (Lehrer & Gevirtz 2014, Front Psychol 5:756,
    doi:10.3389/fpsyg.2014.00756); slow breathing lowers self-rated anxiety and arousal
    (Zaccaro et al. 2018, Front Hum Neurosci 12:353, doi:10.3389/fnhum.2018.00353).
    """

    name: str = "resonance breathing"
    inhale_s: float = 5.0
    hold_in_s: float = 0.0
    exhale_s: float = 5.0
    hold_out_s: float = 0.0
    cycles: int = 30
    instructions: str = (
        "Sit comfortably. Breathe in slowly through your nose for 5 seconds, then out gently for "
        "5 seconds, without holding. That is 6 breaths a minute; keep going for 5 minutes."
    )

    @property
    def cycle_s(self) -> float:
        return self.inhale_s + self.hold_in_s + self.exhale_s + self.hold_out_s

    @property
    def duration_s(self) -> float:
        return self.cycles * self.cycle_s

    @property
    def breaths_per_min(self) -> float:
        """The paced breathing rate; the RR spectrum should peak at this / 60 Hz (alerts/effect.py)."""
        return 60.0 / self.cycle_s

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duration_s"] = self.duration_s
        d["breaths_per_min"] = round(self.breaths_per_min, 3)
        return d


@dataclass(frozen=True)
class Prompt:
    """Field names are a contract (README "MQTT"; MQTT `<person>/prompt`, InfluxDB `prompts`).

    `time` and `expires_at` are unix seconds; `stress_score` 0-100; `reason` a sentence a person
    understands.
    """

    id: str
    person: str
    time: float
    kind: PromptKind
    reason: str
    stress_score: float | None
    expires_at: float
    exercise: Exercise = field(default_factory=Exercise)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"prompt kind must be one of {', '.join(KINDS)}, got {self.kind!r}")

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "person": self.person,
            "time": self.time,
            "kind": self.kind,
            "exercise": self.exercise.to_dict(),
            "reason": self.reason,
            "stress_score": self.stress_score,
            "expires_at": self.expires_at,
        }


# The snooze lengths accepted, in minutes (ours). At least 1: a shorter snooze is no snooze, the
# reminder would come with the next reading (every `step_s`, 10 s by default). At most 240 (4 h,
# also the top of the Home Assistant blueprint's choice): an acute prompt is about the stress of
# the last 15 minutes and a reminder hours later no longer concerns it; and while a snooze is
# pending no acute prompt goes out (alerts/policy.py), so an unbounded snooze would silently turn
# acute prompts off. Longer than 4 h is `dismiss`.
SNOOZE_MINUTES = (1, 240)


def snooze_minutes(value: object, key: str = "minutes") -> float | None:
    """`value` if it is a snooze length the engine accepts (a number in `SNOOZE_MINUTES`) or None
    (the default length); else ValueError naming `key`. The one check of a snooze length: the
    phone's answer (`parse_response`), the engine's `respond` and `AlertSettings.snooze_default_min`."""
    if value is None:
        return None
    low, high = SNOOZE_MINUTES
    # bool is an int in Python; the chained comparison is False for NaN and works on integers
    # of any size (float(10**400) would overflow)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{key}: must be a snooze length from {low} to {high} minutes, got {_shown(value)}")
    return value


def _shown(value) -> str:
    """`value` for a one-line message: huge integers by their length, long text cut."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        return f"an integer of {math.floor(math.log10(abs(value))) + 1} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_response(payload: bytes) -> dict:
    """A phone's answer `{"id": ..., "action": "done"|"snooze"|"dismiss"|"not_stressed", "minutes": ...}`;
    `minutes` is optional and, when given, a snooze length (`snooze_minutes`).

    Raises ValueError with the problem for anything else (the adapter logs and counts it)."""
    import json

    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")  # noqa: TRY004 (any bad payload is one ValueError for the adapter)
    if not isinstance(data.get("id"), str) or not data["id"]:
        raise ValueError("missing string field 'id'")
    if data.get("action") not in ACTIONS:
        raise ValueError(f"'action' must be one of {', '.join(ACTIONS)}")
    minutes = snooze_minutes(data.get("minutes"))
    return {"id": data["id"], "action": PromptAction(data["action"]), "minutes": minutes}
