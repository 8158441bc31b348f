"""GATT 0x2A53 (RSC Measurement) parsing, from the GATT specification's field layout."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector import rsc
from collector.events import MotionKind


@pytest.mark.parametrize(
    "data, want",
    [
        # walking 1.5 m/s (384/256), 110 steps/min, nothing optional
        (bytes([0x00, 0x80, 0x01, 110]), (1.5, 110, False, None, None)),
        # running 3.25 m/s, 172 steps/min, stride 1.13 m, total distance 1234.5 m
        (bytes([0x07, 0x40, 0x03, 172, 0x71, 0x00, 0x39, 0x30, 0x00, 0x00]), (3.25, 172, True, 1.13, 1234.5)),
        # total distance only (bit 1): the distance directly follows the cadence
        (bytes([0x02, 0x00, 0x00, 0, 0x0A, 0x00, 0x00, 0x00]), (0.0, 0, False, None, 1.0)),
    ],
)
def test_fields_decode_as_the_gatt_specification_lays_them_out(data, want):
    m = rsc.parse(data)
    assert (m.speed_m_s, m.cadence_spm, m.running, m.stride_m, m.distance_m) == want


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes([0x00, 0x80, 0x01]),
        bytes([0x01, 0, 0, 90, 0x10]),
        bytes([0x03, 0, 0, 90, 0x10, 0x00, 0x01]),
    ],
)
def test_payloads_shorter_than_their_flags_announce_are_malformed(data):
    with pytest.raises(rsc.MalformedRsc):
        rsc.parse(data)


def test_a_measurement_says_still_walking_or_running():
    kinds = [
        rsc.motion(rsc.parse(b), "ann", "pod", 10.0, 1.0).kind
        for b in (bytes([0x00, 0, 0, 0]), bytes([0x00, 0x80, 0x01, 110]), bytes([0x04, 0x40, 0x03, 172]))
    ]
    assert kinds == [MotionKind.STILL, MotionKind.WALKING, MotionKind.RUNNING]
    m = rsc.motion(rsc.parse(bytes([0x04, 0x40, 0x03, 172])), "ann", "pod", 10.0, 1.0)
    assert (m.cadence_spm, m.speed_m_s, m.source, m.span_s) == (172.0, 3.25, "rsc", 1.0)


@given(st.binary(max_size=20))
def test_arbitrary_bytes_decode_or_raise_malformed_rsc_only(data):
    try:
        rsc.parse(data)
    except rsc.MalformedRsc:
        pass
