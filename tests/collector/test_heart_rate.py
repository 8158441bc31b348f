"""GATT 0x2A37 parsing: real device captures, spec-derived cases, and arbitrary bytes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.heart_rate import HeartRateMeasurement, MalformedMeasurement, parse


def test_every_captured_payload_decodes_as_the_specification_says(reference):
    cases = json.loads((reference / "ble/hrm_0x2a37_payloads.json").read_text())
    assert len(cases) >= 38
    for case in cases:
        m = parse(bytes.fromhex(case["hex"]))
        want = case["expected_decode_computed_by_seed_script"]
        assert m.flags == int(want["flags"], 16), case["hex"]
        assert (
            m.hr_bpm == want["hr_bpm"] and m.contact == want["contact"] and m.energy_kj == want["energy_kj"]
        )
        assert list(m.rr_raw) == want["rr_raw_1_1024s"], case["hex"]
        assert [round(x, 3) for x in m.rr_ms] == want["rr_ms"]
        assert m.trailing_bytes == (want["trailing_unparsed_bytes"] or 0)
        assert m.malformed == bool(want["trailing_unparsed_bytes"])


@pytest.mark.parametrize(
    "data, expected",
    [
        (bytes([0x01, 0x2C, 0x01]), {"hr_bpm": 300, "rr_raw": ()}),  # uint16 heart rate
        (
            bytes([0x19, 0x50, 0x00, 0x34, 0x12, 0x00, 0x04]),
            {"hr_bpm": 80, "energy_kj": 0x1234, "rr_raw": (1024,)},
        ),
        (
            bytes([0x18, 0x48, 0x10, 0x27, 0x00, 0x04, 0x00, 0x03]),
            {"hr_bpm": 72, "energy_kj": 10000, "rr_raw": (1024, 768)},
        ),
        (bytes([0x06, 0x48]), {"contact": "supported_detected"}),
        (bytes([0x04, 0x48]), {"contact": "supported_not_detected"}),
        (
            bytes([0x10, 0x48, 0x00, 0x00, 0x00, 0x20]),
            {"rr_raw": (), "rejected_rr": (0, 0x2000)},
        ),  # RR 0 and 8 s
    ],
)
def test_spec_derived_cases(data, expected):
    m = parse(data)
    for key, value in expected.items():
        assert getattr(m, key) == value, key


def test_rr_keeps_full_precision():
    m = parse(bytes([0x10, 0x40, 0x11, 0x04]))  # 1041/1024 s
    assert m.rr_ms == (1041 * 1000 / 1024,)
    assert m.rr_ms[0] == pytest.approx(1016.6015625, abs=0)


@pytest.mark.parametrize("data", [b"", b"\x10", b"\x01\x48", b"\x08\x48\x01", b"\x09\x48\x00\x01"])
def test_truncated_payloads_raise_the_documented_error(data):
    with pytest.raises(MalformedMeasurement):
        parse(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x10\x48",  # uint8 heart rate, RR flag, nothing after
        b"\x16\x48\x04",  # contact detected, RR flag, one stray byte: no whole RR value
        b"\x11\x48\x00",  # uint16 heart rate, RR flag, nothing after
        b"\x19\x48\x00\x10\x27",  # uint16 heart rate + energy expended, RR flag, nothing after
    ],
)
def test_rr_flag_without_an_rr_value_is_malformed(data):
    """Flags bit 4 means "one or more RR-Interval values are present" (GATT characteristic
    0x2A37): a payload that sets it and carries none is not a valid measurement."""
    with pytest.raises(MalformedMeasurement, match="RR intervals"):
        parse(data)


def test_rr_flag_with_only_impossible_values_still_parses_and_is_flagged():
    m = parse(bytes([0x10, 0x48, 0x00, 0x00]))  # one RR value, 0 ms: present but impossible
    assert m.rr_raw == () and m.rejected_rr == (0,) and m.malformed


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=40))
def test_no_byte_string_raises_anything_but_the_documented_error(data):
    try:
        m = parse(data)
    except MalformedMeasurement:
        return
    assert isinstance(m, HeartRateMeasurement)
    assert all(200 <= r * 1000 / 1024 <= 3000 for r in m.rr_raw)
