"""The phone's activity over MQTT: Android's and iOS's activity names and confidences become Motion;
anything else is a ValueError with a sentence (the MQTT sink logs it once and changes nothing)."""

from __future__ import annotations

import pytest

from collector.events import MotionKind
from collector.phone_activity import PHONE_AHEAD_S, PHONE_BEFORE_S, motion_from_phone

T = 1_780_000_000.0


@pytest.mark.parametrize(
    "payload,kind",
    [
        # Android's detected_activity states
        ('{"activity": "still", "confidence": 100}', MotionKind.STILL),
        ('{"activity": "walking", "confidence": 80}', MotionKind.WALKING),
        ('{"activity": "on_foot", "confidence": 77}', MotionKind.WALKING),
        ('{"activity": "running", "confidence": 90}', MotionKind.RUNNING),
        ('{"activity": "on_bicycle", "confidence": 60}', MotionKind.CYCLING),
        ('{"activity": "in_vehicle", "confidence": 95}', MotionKind.IN_VEHICLE),
        ('{"activity": "tilting", "confidence": 100}', MotionKind.UNKNOWN),
        ('{"activity": "unknown", "confidence": null}', MotionKind.UNKNOWN),
        # iOS's activity states, confidence as a word
        ('{"activity": "Stationary", "confidence": "High"}', MotionKind.STILL),
        ('{"activity": "Walking", "confidence": "Medium"}', MotionKind.WALKING),
        ('{"activity": "Automotive", "confidence": "High"}', MotionKind.IN_VEHICLE),
        ('{"activity": "Cycling"}', MotionKind.CYCLING),
        # a bare name from a plain MQTT client, and a low confidence that says nothing
        ("walking", MotionKind.WALKING),
        ('{"activity": "walking", "confidence": 30}', MotionKind.UNKNOWN),
        ('{"activity": "Running", "confidence": "Low"}', MotionKind.UNKNOWN),
    ],
)
def test_each_phone_activity_becomes_motion_from_90_seconds_before_to_a_minute_after_it(payload, kind):
    m = motion_from_phone("ann", payload.encode(), T)
    assert (m.person, m.device, m.kind, m.source) == ("ann", "phone", kind, "phone")
    assert (m.t, m.t - m.span_s, m.t + m.hold_s) == (T, T - PHONE_BEFORE_S, T + PHONE_AHEAD_S)


@pytest.mark.parametrize(
    "payload,message",
    [
        (b"\xff\xfe", "not UTF-8 text"),
        (b'{"activity": "flying"}', "unknown activity 'flying'"),
        (b'{"confidence": 80}', "unknown activity None"),
        (b"[1, 2]", "expected"),
        (b'{"activity": "walking", "confidence": 180}', "confidence must be a number from 0 to 100"),
        (b'{"activity": "walking", "confidence": "NaN"}', "confidence must be a number from 0 to 100"),
        (b'{"activity": "walking", "confidence": true}', "confidence must be a number from 0 to 100"),
        (b"", "unknown activity ''"),
    ],
)
def test_a_payload_that_is_no_activity_is_refused_with_a_reason(payload, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        motion_from_phone("ann", payload, T)
