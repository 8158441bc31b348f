"""Polar Measurement Data bytes: the examples of Polar's online_measurement.pdf, then edge cases."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector import pmd

# Section 5.2, "H10 response used as example": the ACC settings of an H10.
H10_ACC_SETTINGS = bytes.fromhex(
    "F0 01 02 00 00 00 04 19 00 32 00 64 00 C8 00 01 01 10 00 02 03 02 00 04 00 08 00"
)
# Section 5.3: the first ACC frame an H10 sends (the document shows its first two samples).
H10_FRAME_HEAD = bytes.fromhex("02 EA 54 A2 42 8B 45 52 08 01 45 FF E4 FF B5 03 45 FF E4 FF B8 03")
# Section 5.3, Polar Verity Sense: a delta-compressed frame (type 0x80). The document prints the
# reference sample and the first delta samples of a block of 0x1D; the block here is cut to the 5
# samples whose bytes the document shows (count 0x05 instead of 0x1D), the rest as printed.
VERITY_DELTA_FRAME = bytes.fromhex(
    "02 64 6C 76 C4 3C C6 7F 07 80 D0 FF 65 01 E4 0F 08 05 FC 07 FF 0C 13 F2 11 F1 1A F9 EE F8 EF 0C 03"
)


def test_the_h10_acc_settings_response_offers_25_to_200_hz_16_bits_and_2_to_8_g():
    r = pmd.parse_response(H10_ACC_SETTINGS)
    assert (r.op, r.measurement_type, r.status, r.more, r.ok) == (
        pmd.OP_GET_SETTINGS,
        pmd.ACC,
        0,
        False,
        True,
    )
    s = pmd.parse_settings(r.params)
    assert s.get(pmd.SAMPLE_RATE) == (25, 50, 100, 200)
    assert s.get(pmd.RESOLUTION) == (16,) and s.get(pmd.RANGE) == (2, 4, 8) and s.factor == 1.0


def test_the_start_request_asks_for_25_hz_8_g_16_bits_in_the_documents_layout():
    chosen = pmd.choose_acc(pmd.parse_settings(pmd.parse_response(H10_ACC_SETTINGS).params))
    assert chosen.get(pmd.SAMPLE_RATE) == (25,) and chosen.get(pmd.RANGE) == (8,)
    # The document's own start request (200 Hz) has the same layout: range, rate, resolution.
    assert pmd.start_command(chosen) == bytes.fromhex("02 02 02 01 08 00 00 01 19 00 01 01 10 00")
    at_200 = pmd.Settings({pmd.RANGE: (8,), pmd.SAMPLE_RATE: (200,), pmd.RESOLUTION: (16,)})
    assert pmd.start_command(at_200) == bytes.fromhex("02 02 02 01 08 00 00 01 C8 00 01 01 10 00")
    assert pmd.stop_command() == bytes.fromhex("03 02") and pmd.get_settings_command() == bytes.fromhex(
        "01 02"
    )


def test_the_start_responses_of_the_h10_and_the_verity_sense():
    h10 = pmd.parse_response(bytes.fromhex("F0 02 02 00 00 01"))  # 0x01 "reserved"
    assert h10.ok and pmd.parse_settings(h10.params, strict=False).factor == 1.0
    verity = pmd.parse_response(bytes.fromhex("F0 02 02 00 00 05 01 40 DA 7F 39"))
    assert verity.ok and pmd.parse_settings(verity.params, strict=False).factor == pytest.approx(
        0.000244, rel=1e-4
    )


def test_the_h10_frame_decodes_to_milli_g_with_the_last_sample_at_the_timestamp():
    frame = pmd.AccDecoder(pmd.Settings({pmd.SAMPLE_RATE: (200,)})).decode(H10_FRAME_HEAD)
    assert frame.t_ns[-1] == 599618164814402794  # the document's value
    # The document annotates 45 FF as -184 mG; 0xFF45 is -187 (its y and z, -28 and 949, agree).
    assert list(zip(frame.x, frame.y, frame.z)) == [(-187, -28, 949), (-187, -28, 952)]
    assert frame.t_ns[0] == 599618164814402794 - 5_000_000  # 200 Hz before the first frame


def test_later_frames_are_spaced_by_the_timestamps_not_the_nominal_rate():
    dec = pmd.AccDecoder(pmd.Settings({pmd.SAMPLE_RATE: (25,)}))
    dec.decode(frame(1_000_000_000, [(0, 0, 1000)] * 3))
    second = dec.decode(frame(1_000_000_000 + 3 * 39_000_000, [(0, 0, 1000)] * 3))  # a clock 2.5 % fast
    assert [b - a for a, b in zip(second.t_ns, second.t_ns[1:])] == [39_000_000, 39_000_000]


def test_the_verity_delta_frame_decodes_as_the_document_shows():
    used = pmd.parse_settings(bytes.fromhex("05 01 40 DA 7F 39"))
    raw = pmd.AccDecoder(pmd.Settings({pmd.RESOLUTION: (16,), pmd.CHANNELS: (3,)})).decode(VERITY_DELTA_FRAME)
    ints = list(zip(raw.x, raw.y, raw.z))
    # reference (-48, 357, 4068); "delta sample 1 (-52, 364, 4067)"; "delta sample 2 (-40, 383, 4053)"
    assert ints[:3] == [(-48000, 357000, 4068000), (-52000, 364000, 4067000), (-40000, 383000, 4053000)]
    assert len(ints) == 6 and raw.t_ns[-1] == 540368444604181604
    scaled = pmd.AccDecoder(pmd.Settings({**used.values, pmd.RESOLUTION: (16,)})).decode(VERITY_DELTA_FRAME)
    assert scaled.z[0] == pytest.approx(4068 * 0.000244 * 1000, rel=1e-4)  # ~993 mG: gravity


def test_deltas_narrower_than_a_byte_are_read_least_significant_bit_first():
    # 3 channels, 4-bit deltas, 2 samples: (+1, -1, +7) then (-8, 0, +2), packed bit 0 first.
    nibbles = [0x1, 0xF, 0x7, 0x8, 0x0, 0x2]
    packed = sum(v << (4 * i) for i, v in enumerate(nibbles)).to_bytes(3, "little")
    body = (10).to_bytes(2, "little", signed=True) * 3 + bytes([4, 2]) + packed
    data = bytes([0x02]) + (5).to_bytes(8, "little") + bytes([0x81]) + body
    f = pmd.AccDecoder(pmd.Settings()).decode(data)
    assert list(zip(f.x, f.y, f.z)) == [(10, 10, 10), (11, 9, 17), (3, 9, 19)]


@pytest.mark.parametrize(
    "data, problem",
    [
        (bytes.fromhex("02 00 00"), "10-byte header"),
        (bytes.fromhex("00") + bytes(8) + bytes.fromhex("01 00 00 00 00 00 00"), "not ACC"),
        (bytes.fromhex("02") + bytes(8) + bytes.fromhex("01 01 02 03"), "whole number"),
        (bytes.fromhex("02") + bytes(8) + bytes.fromhex("07 00 00 00"), "frame type 7"),
        (bytes.fromhex("02") + bytes(8) + bytes.fromhex("81 00 00 00 00 00 00 08 09 01"), "frame ends"),
        (bytes.fromhex("02") + bytes(8) + bytes.fromhex("81 00 00 00 00 00 00 00 01"), "width 0"),
    ],
)
def test_bad_frames_raise_pmd_error_naming_the_problem(data, problem):
    with pytest.raises(pmd.PmdError, match=problem):
        pmd.AccDecoder(pmd.Settings()).decode(data)


@pytest.mark.parametrize("status", list(pmd.Status))
def test_every_documented_status_is_named(status):
    r = pmd.parse_response(bytes([0xF0, pmd.OP_START, pmd.ACC, status]))
    assert r.ok == (status == 0) and r.describe() == f"start: {status.name}"
    assert pmd.parse_response(bytes([0xF0, 0x03, 0x02, 99])).describe() == "stop: status 99 (not documented)"


def test_features_announce_the_types_a_strap_can_measure():
    assert pmd.supported_types(bytes.fromhex("0F 05 00")) == {0, 2}  # H10: ECG and ACC
    assert pmd.ACC in pmd.supported_types(bytes.fromhex("0F 6E 00 00"))  # Verity Sense (figure 1)
    with pytest.raises(pmd.PmdError):
        pmd.supported_types(b"\x01")


def test_choice_without_25_hz_or_8_g_takes_the_next_rate_up_and_the_widest_range():
    offered = pmd.Settings({pmd.SAMPLE_RATE: (52, 104, 208), pmd.RANGE: (2, 4), pmd.CHANNELS: (3,)})
    c = pmd.choose_acc(offered)
    assert (c.get(pmd.SAMPLE_RATE), c.get(pmd.RANGE), c.get(pmd.CHANNELS)) == ((52,), (4,), (3,))
    with pytest.raises(pmd.PmdError, match="no sample rate"):
        pmd.choose_acc(pmd.Settings({pmd.RANGE: (8,)}))


def test_settings_with_an_undocumented_type_are_refused_when_strict():
    with pytest.raises(pmd.PmdError, match="setting type 3"):
        pmd.parse_settings(bytes.fromhex("03 01 00 00"))
    with pytest.raises(pmd.PmdError, match="announces 4 values"):
        pmd.parse_settings(bytes.fromhex("00 04 19 00"))


@given(st.binary(max_size=80))
def test_arbitrary_bytes_decode_or_raise_pmd_error_only(data):
    for decode in (
        pmd.AccDecoder(pmd.Settings()).decode,
        pmd.parse_response,
        lambda d: pmd.parse_settings(d[1:]),
        pmd.supported_types,
    ):
        try:
            decode(data)
        except pmd.PmdError:
            pass


def frame(stamp_ns: int, samples: list[tuple[int, int, int]]) -> bytes:
    body = b"".join(v.to_bytes(2, "little", signed=True) for s in samples for v in s)
    return bytes([pmd.ACC]) + stamp_ns.to_bytes(8, "little") + bytes([0x01]) + body
