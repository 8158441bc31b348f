"""File import: every supported format reads into Beat/Gap events; bad input is a clear error."""

from __future__ import annotations

import pytest

from collector.events import Gap
from collector.files import RecordingError, detect_format, read_recording


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_plain_text_in_milliseconds(tmp_path):
    rec = read_recording(write(tmp_path, "rr.txt", "800\n810.5\n# comment\n\n790\n"))
    assert rec.format == "text"
    assert [b.rr_ms for b in rec.beats] == [800, 810.5, 790]
    assert rec.beats[-1].t == pytest.approx((800 + 810.5 + 790) / 1000)


def test_plain_text_in_seconds_is_detected(tmp_path):
    rec = read_recording(write(tmp_path, "rr.txt", "0.8\n0.81\n0.79\n"))
    assert [round(b.rr_ms, 6) for b in rec.beats] == [800, 810, 790]


def test_csv_with_named_rr_column_and_time_in_ns_makes_gaps(tmp_path):
    text = "time_ns,hr,rr\n1000000000,60,1000\n2000000000,60,1000\n,60,\n9000000000,60,1000\n"
    rec = read_recording(write(tmp_path, "polar.csv", text))
    assert rec.format == "csv"
    assert len(rec.beats) == 3
    gaps = [e for e in rec.events if isinstance(e, Gap)]
    assert len(gaps) == 1 and gaps[0].end == pytest.approx(8.0)


def test_csv_without_rr_column_names_the_header(tmp_path):
    with pytest.raises(RecordingError, match=r"x.csv:1: no RR column"):
        read_recording(write(tmp_path, "x.csv", "a,b\n1,2\n"))


def test_garbage_value_names_file_and_line(tmp_path):
    with pytest.raises(RecordingError, match=r"bad.txt:3: RR value 'abc' is not a number"):
        read_recording(write(tmp_path, "bad.txt", "800\n801\nabc\n"))


def test_binary_file_is_rejected(tmp_path):
    p = tmp_path / "blob.bin"
    p.write_bytes(b"\x00\x01\x02garbage")
    with pytest.raises(RecordingError, match="binary"):
        read_recording(p)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(RecordingError, match="unknown format"):
        read_recording(write(tmp_path, "x.txt", "hello world\n"))
    with pytest.raises(RecordingError, match="cannot read"):
        read_recording(tmp_path / "nope.txt")


def test_non_positive_rr_is_an_error(tmp_path):
    with pytest.raises(RecordingError, match=r"z.txt:2: RR interval -5 ms"):
        read_recording(write(tmp_path, "z.txt", "800\n-5\n"))


def test_hrm_not_in_rr_mode_is_refused(tmp_path):
    with pytest.raises(RecordingError, match="not in R-R mode"):
        read_recording(write(tmp_path, "x.hrm", "[Params]\nInterval=1\n[HRData]\n70\n"))


def test_ibi_gap_between_segments(tmp_path):
    text = "1644226061.0, IBI\n1.0,0.9\n1.9,0.9\n10.0,0.8\n10.8,0.8\n"
    rec = read_recording(write(tmp_path, "IBI.csv", text))
    assert rec.format == "ibi"
    assert rec.beats[0].t == pytest.approx(1644226062.0)
    assert sum(isinstance(e, Gap) for e in rec.events) == 1


def test_detection_of_each_format():
    assert detect_format("[Params]\nVersion=106\n") == "hrm"
    assert detect_format("beat_time_s,rr_ms,label_prev,label_beat\n1,2,N,N\n") == "nsr2db"
    assert detect_format("1644226061.000000, IBI\n") == "ibi"
    assert detect_format("time,rr\n1,800\n") == "csv"
    assert detect_format("812\n") == "text"


# -- real recordings --------------------------------------------------------------------------


def test_real_files_of_every_format(reference):
    rr = reference / "rr"
    cases = {
        rr / "kubios_sample_5min/rr_ms.txt": ("text", 423),
        rr / "rest_exercise/exercise_rri.hrm": ("hrm", None),
        rr / "polar_h10_pvc/device_rr.csv": ("csv", 798),
        rr / "nsr2db_24h/nsr004.csv": ("nsr2db", None),
        reference / "stress/stress_predict/S01/IBI.csv": ("ibi", None),
    }
    for path, (fmt, n) in cases.items():
        rec = read_recording(path)
        assert rec.format == fmt, path
        if n is not None:
            assert len(rec.beats) == n, path
        assert all(b.rr_ms > 0 for b in rec.beats)
        times = [b.t for b in rec.beats]
        assert times == sorted(times), path


def test_empatica_ibi_has_real_gaps(reference):
    rec = read_recording(reference / "stress/stress_predict/S01/IBI.csv")
    gaps = [e for e in rec.events if isinstance(e, Gap)]
    assert len(gaps) > 10  # the E4 drops beats during motion
    assert rec.beats[0].t > 1644226061  # anchored to the unix start time of row 1


def test_hrm_start_time_comes_from_params(reference):
    rec = read_recording(reference / "rr/rest_exercise/exercise_rri.hrm")
    # Date=20080208, StartTime=08:50:31.0 -> 2008-02-08T08:50:31Z
    assert rec.beats[0].t - rec.beats[0].rr_ms / 1000 == pytest.approx(1202460631.0)
