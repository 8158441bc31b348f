"""File import: every supported format reads into Beat/Gap events; bad input is a clear error."""

from __future__ import annotations

import pytest

from collector.events import Beat, Gap
from collector.files import (
    ACC_CHUNK,
    RecordingError,
    RecordingStream,
    detect_format,
    read_polar_acc,
    read_recording,
)


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


def test_comment_only_csv_is_a_clear_error(tmp_path):
    path = write(tmp_path, "c.csv", "# exported by something\n\n# nothing else\n")
    with pytest.raises(RecordingError, match=r"c.csv: no CSV header: the file has only comments"):
        read_recording(path, "csv")
    with pytest.raises(RecordingError, match=r"c.csv: no data: only comments or blank lines"):
        read_recording(path)


def test_a_huge_csv_field_names_its_line(tmp_path):
    path = write(tmp_path, "big.csv", 'time,rr\n1,800\n2,"' + "9" * 200_000 + '"\n')
    with pytest.raises(
        RecordingError, match=r"big.csv:3: not a valid CSV row: field larger than field limit"
    ):
        read_recording(path)


def test_a_line_too_long_for_any_rr_format_is_refused(tmp_path):
    path = write(tmp_path, "long.txt", "800\n" + "8" * (2 << 20) + "\n")
    with pytest.raises(RecordingError, match=r"long.txt:2: line longer than"):
        read_recording(path)


@pytest.mark.parametrize(
    "name, text, line",
    [
        ("back.csv", "time_s,rr_ms\n10.0,800\n10.8,800\n5.0,800\n", 4),
        ("IBI.csv", "1644226061.0, IBI\n1.0,0.9\n1.9,0.9\n1.2,0.8\n", 4),
        ("beats.csv", "beat_time_s,rr_ms,label_prev,label_beat\n1.0,800,N,N\n1.8,800,N,N\n0.5,800,N,N\n", 4),
    ],
)
def test_timestamps_going_backwards_are_an_error_naming_the_line(tmp_path, name, text, line):
    with pytest.raises(RecordingError, match=rf"{name}:{line}: time goes backwards"):
        read_recording(write(tmp_path, name, text))


def test_equal_timestamps_are_fine(tmp_path):
    # Polar exports stamp every RR interval of one notification with the notification's time
    rec = read_recording(write(tmp_path, "p.csv", "time_s,rr_ms\n10.0,800\n10.0,790\n10.8,800\n"))
    assert len(rec.beats) == 3


@pytest.mark.parametrize(
    "params, line, message",
    [
        ("Date=2008-02-08\nStartTime=08:50:31.0\n", 3, "Date '2008-02-08' is not a date"),
        ("Date=20080208\nStartTime=8h50\n", 4, "StartTime '8h50' is not a time"),
        ("Date=20080208\nStartTime=25:00:00\n", 4, "StartTime '25:00:00' is not a time"),
    ],
)
def test_hrm_with_an_unreadable_start_is_an_error_not_1970(tmp_path, params, line, message):
    text = "[Params]\nVersion=106\n" + params + "Interval=238\n[HRData]\n800\n810\n"
    with pytest.raises(RecordingError, match=rf"x.hrm:{line}: {message}"):
        read_recording(write(tmp_path, "x.hrm", text))


def test_one_column_csv_headed_rr_ms_is_detected(tmp_path):
    rec = read_recording(write(tmp_path, "rr.csv", "rr_ms\n800\n810\n790\n"))
    assert rec.format == "csv" and [b.rr_ms for b in rec.beats] == [800, 810, 790]


@pytest.mark.parametrize(
    "text, guessed",
    [
        ("0.8\n0.81\n0.79\n70\n", "seconds"),
        ("800\n810\n790\n70000\n", "milliseconds"),
    ],
)
def test_an_out_of_range_value_says_which_units_were_guessed(tmp_path, text, guessed):
    with pytest.raises(
        RecordingError, match=rf"rr.txt:4: RR interval .* ms is not in .* \(units guessed as {guessed}"
    ):
        read_recording(write(tmp_path, "rr.txt", text))
    csv_text = "rr\n" + text
    with pytest.raises(RecordingError, match=rf"rr.csv:5: .*units guessed as {guessed}"):
        read_recording(write(tmp_path, "rr.csv", csv_text))


def test_latin1_files_are_still_read(tmp_path):
    p = tmp_path / "old.csv"
    p.write_bytes("# Messung M\xfcller\ntime,rr\n1,800\n2,800\n".encode("latin-1"))
    assert len(read_recording(p).beats) == 2


@pytest.mark.slow
def test_the_stream_yields_events_before_the_file_is_read(tmp_path):
    path = write(tmp_path, "long.txt", "800\n" * 200_000)
    with RecordingStream(path) as stream:
        assert stream.format == "text"
        events = iter(stream)
        first = next(events)
        assert isinstance(first, Beat) and first.rr_ms == 800
        assert stream.progress() < 0.5  # the rest is still on disk
        assert sum(1 for _ in events) == 200_000 - 1
        assert stream.n_beats == 200_000 and stream.progress() == 1.0


def test_an_error_late_in_a_stream_comes_after_the_good_events(tmp_path):
    path = write(tmp_path, "late.txt", "800\n" * 1000 + "oops\n")
    got = []
    with (
        pytest.raises(RecordingError, match=r"late.txt:1001: RR value 'oops'"),
        RecordingStream(path) as stream,
    ):
        got.extend(stream)  # what arrived before the error stays
    assert len(got) == 1000


# -- real recordings --------------------------------------------------------------------------


@pytest.mark.slow
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


ACC_HEADER = "Phone timestamp;sensor timestamp [ns];X [mg];Y [mg];Z [mg]\n"


def acc_rows(n: int, start_ns: int = 704201974831254116, step_ns: int = 19340401) -> str:
    return "".join(
        f"2022-04-25T11:39:36.978;{start_ns + i * step_ns};-777;{436 + i % 3};-499\n" for i in range(n)
    )


def test_a_polar_sensor_logger_acc_export_reads_as_acceleration_in_chunks(tmp_path):
    path = tmp_path / "Polar_Sense_ACC.txt"
    path.write_text(ACC_HEADER + acc_rows(ACC_CHUNK + 3))
    events = list(read_polar_acc(path, person="ann", device="sense"))
    assert [len(e.t) for e in events] == [ACC_CHUNK, 3]
    first = events[0]
    assert (first.person, first.device, first.source) == ("ann", "sense", "file")
    assert (first.x[0], first.y[0], first.z[0]) == (-777.0, 436.0, -499.0)
    # ns since 2000-01-01 UTC: 2022-04-25 11:39:34 UTC, the day the export's phone clock shows
    assert first.t[0] == pytest.approx(946684800 + 704201974.831254116, abs=1e-6)


@pytest.mark.parametrize(
    "text, problem, line",
    [
        ("Phone timestamp;HR [bpm]\n2022-04-25T11:39:02.323;66\n", "not a Polar Sensor Logger ACC export", 1),
        (ACC_HEADER + "x;704201974831254116;-777;oops;-499\n", "y \\[mg\\] value 'oops' is not a number", 2),
        (ACC_HEADER + "x;704201974831254116;-777\n", "expected 5 columns", 2),
        (ACC_HEADER + acc_rows(2) + acc_rows(1), "is not later than the row before", 4),
        (ACC_HEADER, "no accelerometer samples", None),
    ],
)
def test_a_bad_acc_export_names_the_file_line_and_problem(tmp_path, text, problem, line):
    path = tmp_path / "acc.txt"
    path.write_text(text)
    with pytest.raises(RecordingError, match=problem) as raised:
        list(read_polar_acc(path))
    assert raised.value.line == line


def test_an_acc_export_given_as_an_rr_recording_says_which_command_reads_it(tmp_path):
    path = tmp_path / "Polar_Sense_ACC.txt"
    path.write_text(ACC_HEADER + acc_rows(5))
    with pytest.raises(RecordingError, match="stresswatch motion FILE"):
        read_recording(path)
