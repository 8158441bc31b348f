"""The phone's activity (Home Assistant companion app, forwarded over MQTT) as a Motion event (pure).

Android's companion app has `sensor.<phone>_detected_activity` (Google's Activity Recognition
API: still, walking, running, on_foot, on_bicycle, in_vehicle, tilting, unknown, with a
`confidence` attribute 0-100, updated every 1-2 minutes); iOS has `sensor.<phone>_activity`
(Core Motion: Stationary, Walking, Running, Automotive, Cycling, Unknown, with a `Confidence`
attribute Low / Medium / High). deploy/homeassistant/stresswatch_activity.yaml forwards the
state to `stresswatch/<person>/activity` on every change and once a minute; a phone without
Home Assistant may publish the same payload:

    {"activity": "walking", "confidence": 80}     (or just the bare activity name)

Ours: a report stands for the PHONE_BEFORE_S (90 s) before it arrived and the PHONE_AHEAD_S
(60 s) after it: the Activity Recognition API classifies the last few seconds to a minute of
motion, and the next report is due within a minute, so consecutive reports overlap and every
reading's window is covered while the phone reports; a phone that stops reporting stops saying
anything a minute later (no stale "still"), and the phone's next report ends the hold at once. A report below MIN_CONFIDENCE
says `unknown` (50 %, ours: the app shows the most probable activity whatever its confidence,
and one with less than even odds is a guess; iOS's "medium" passes, "low" does not).
"""

from __future__ import annotations

import json
import math

from collector.events import Motion, MotionKind

PHONE_BEFORE_S = 90.0
PHONE_AHEAD_S = 60.0
MIN_CONFIDENCE = 50.0

# Android (lower case) and iOS (capitalised: compared in lower case) activity names.
KINDS = {
    "still": MotionKind.STILL,
    "stationary": MotionKind.STILL,
    "walking": MotionKind.WALKING,
    "on_foot": MotionKind.WALKING,  # Google: "on foot", walking or running; walking is the usual
    "running": MotionKind.RUNNING,
    "on_bicycle": MotionKind.CYCLING,
    "cycling": MotionKind.CYCLING,
    "in_vehicle": MotionKind.IN_VEHICLE,
    "automotive": MotionKind.IN_VEHICLE,
    "tilting": MotionKind.UNKNOWN,  # the phone's angle changed: nothing about the body
    "unknown": MotionKind.UNKNOWN,
}
# iOS reports confidence as a word (CMMotionActivityConfidence).
CONFIDENCE_WORDS = {"low": 25.0, "medium": 50.0, "high": 100.0}


def motion_from_phone(person: str, payload: bytes | str, t: float) -> Motion:
    """The Motion a phone's activity message says, received at unix time `t` (held PHONE_AHEAD_S
    after it, see the module docstring). ValueError with a
    sentence naming what is wrong for a payload that is not one (the caller logs it once)."""
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8 text") from None
    text = payload.strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = text  # a bare activity name, as a plain MQTT client would send it
    if isinstance(body, str):
        body = {"activity": body}
    if not isinstance(body, dict):
        raise ValueError(
            f'expected {{"activity": ..., "confidence": ...}} or an activity name, got {text[:80]!r}'
        )
    name = body.get("activity")
    if not isinstance(name, str) or name.strip().lower() not in KINDS:
        raise ValueError(f"unknown activity {name!r} (one of: {', '.join(sorted(KINDS))})")
    kind = KINDS[name.strip().lower()]
    confidence = _confidence(body.get("confidence"))
    if confidence is not None and confidence < MIN_CONFIDENCE:
        kind = MotionKind.UNKNOWN
    return Motion(person, "phone", t, kind, span_s=PHONE_BEFORE_S, source="phone", hold_s=PHONE_AHEAD_S)


def _confidence(value) -> float | None:
    """A confidence of 0-100 (a number, a numeric string or iOS's word); None when not given."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().lower() in CONFIDENCE_WORDS:
        return CONFIDENCE_WORDS[value.strip().lower()]
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not 0.0 <= number <= 100.0:  # also NaN
        raise ValueError(f"confidence must be a number from 0 to 100 or low/medium/high, got {value!r}")
    return number
