"""Import recorded RR series (text, CSV, Polar HRM, nsr2db CSV, Empatica IBI.csv) as Beat/Gap events, and
Polar Sensor Logger accelerometer exports as Acceleration events."""

from __future__ import annotations

import csv
import functools
import io
import itertools
import math
import os
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from collector.events import GAP_TOLERANCE_S, Acceleration, Beat, Event, Gap

FORMATS = ("auto", "text", "csv", "hrm", "nsr2db", "ibi")

# Values above this are not RR intervals at all (wrong column or units). Implausible but
# positive values below it (an 8 ms double annotation, a 4 s dropout) are kept: the artifact
# corrector and the gap detection of the processing core deal with them.
MAX_RR_MS = 60000.0

_RR_COLUMNS = ("rr_ms", "rr", "rri", "rr_interval", "rr_intervals", "nni", "ibi", "ibi_ms", "ibi_s", "rr_s")
_TIME_COLUMNS = ("time_ns", "time_ms", "time_s", "beat_time_s", "timestamp", "time", "t", "seconds")


class RecordingError(ValueError):
    """A file that cannot be read as an RR recording; the message names the file and line."""

    def __init__(self, path: str | Path, line: int | None, problem: str):
        where = f"{path}:{line}" if line else str(path)
        super().__init__(f"{where}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


@dataclass
class Recording:
    """The events read from one file, with the format detected and per-beat annotations.

    `labels` holds, for nsr2db files, the (label_prev, label_beat) annotation of each beat
    in `events` order (beats only), so tests can keep N-to-N intervals as ground truth.
    """

    path: str
    format: str
    events: list[Event]
    labels: list[tuple[str, str]] = field(default_factory=list)

    @property
    def beats(self) -> list[Beat]:
        return [e for e in self.events if isinstance(e, Beat)]


def read_recording(
    path: str | Path, fmt: str = "auto", person: str = "me", device: str = "file"
) -> Recording:
    """Read all of `path` in format `fmt` (`auto` detects it). Raises RecordingError on bad input.

    For long files prefer `RecordingStream`, which holds one line at a time."""
    labels: list[tuple[str, str]] = []
    with RecordingStream(path, fmt, person, device, labels) as stream:
        events = list(stream)
    return Recording(str(stream.path), stream.format, events, labels)


# The format is detected from the file's first bytes; units of a column without a unit in its
# name are guessed from its first values (our choice: enough to be robust, and a streaming reader
# cannot wait for the median of the whole file).
HEAD_BYTES = 65536
UNIT_SAMPLE = 256
MAX_LINE_CHARS = 1 << 20  # no RR format has lines this long: refuse instead of holding them


class RecordingStream:
    """One recording read incrementally: `format` is known once opened; iterating yields its events.

    Memory does not grow with the file's length: one line is held at a time (plus the first
    UNIT_SAMPLE values while the units are guessed). `labels`, when given, collects the nsr2db
    beat annotations. `n_beats` counts the beats yielded so far, `progress()` the fraction of
    the file's `size` (bytes) read. Iterate once; raises RecordingError (file and line) on bad input.
    """

    def __init__(
        self,
        path: str | Path,
        fmt: str = "auto",
        person: str = "me",
        device: str = "file",
        labels: list[tuple[str, str]] | None = None,
    ):
        self.path = Path(path)
        if fmt not in FORMATS:
            raise RecordingError(path, None, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        try:
            self._raw = open(self.path, "rb")  # noqa: SIM115 -- closed by close() / the context manager
            head = self._raw.read(HEAD_BYTES)
            self.size = os.fstat(self._raw.fileno()).st_size
            self._raw.seek(0)
        except OSError as exc:
            raise RecordingError(path, None, f"cannot read file: {exc.strerror or exc}") from None
        try:
            if b"\x00" in head[:4096]:
                raise RecordingError(path, None, "binary data, not an RR recording")
            self._encoding = _encoding(head, complete=len(head) == self.size)
            text = head.decode(self._encoding, errors="replace")
            if not text.strip() and len(head) == self.size:
                raise RecordingError(path, None, "file is empty")
            self.format = detect_format(text, path) if fmt == "auto" else fmt
        except RecordingError:
            self._raw.close()
            raise
        self.person, self.device, self.labels = person, device, labels
        self.n_beats = 0

    def __enter__(self) -> typing.Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._raw.close()

    def progress(self) -> float:
        """The fraction of the file read so far (0-1)."""
        return min(1.0, self._raw.tell() / self.size) if self.size and not self._raw.closed else 1.0

    def __iter__(self) -> Iterator[Event]:
        text = io.TextIOWrapper(self._raw, encoding=self._encoding, errors="replace", newline=None)
        builder = _BeatBuilder(self.path, self.person, self.device, self.format)
        for ev in _READERS[self.format](_lines(text, self.path), builder, self.labels):
            if isinstance(ev, Beat):
                self.n_beats += 1
            yield ev
        if not self.n_beats:
            raise RecordingError(self.path, None, f"no RR intervals found (read as {self.format})")


def _encoding(head: bytes, complete: bool) -> str:
    """UTF-8 (BOM skipped) when the first bytes are UTF-8, else Latin-1 (old Windows exports)."""
    try:
        head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(head) - 3:  # not just a character cut by the head's end
            return "latin-1"
    return "utf-8-sig"


def _lines(fh: typing.TextIO, path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its line break), refusing lines no RR format has."""
    for no, line in enumerate(iter(functools.partial(fh.readline, MAX_LINE_CHARS), ""), 1):
        if len(line) >= MAX_LINE_CHARS and not line.endswith("\n"):
            raise RecordingError(
                path, no, f"line longer than {MAX_LINE_CHARS} characters: not an RR recording"
            )
        yield no, line.rstrip("\r\n")


def _content(lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """The lines that are neither blank nor `#` comments."""
    return ((no, ln) for no, ln in lines if (s := ln.lstrip()) and s[0] != "#")


def detect_format(text: str, path: str | Path = "<text>") -> str:
    """Guess the format from the start of a file: HRM section headers, CSV headers, IBI start row, numbers."""
    first = next(
        (ln.strip().lower() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), ""
    )
    if _is_polar_acc_header(first):
        raise RecordingError(
            path,
            1,
            "a Polar Sensor Logger accelerometer export, not an RR recording: "
            "`stresswatch motion FILE` reads it",
        )
    if first.startswith("[params]") or "[hrdata]" in text.lower():
        return "hrm"
    if first.replace(" ", "") == "beat_time_s,rr_ms,label_prev,label_beat":
        return "nsr2db"
    cells = [c.strip() for c in first.split(",")]
    if len(cells) == 2 and cells[1].lower() == "ibi" and _is_number(cells[0]):
        return "ibi"
    delimited = "," in first or ";" in first or "\t" in first
    if delimited and any(not _is_number(c) for c in _split_csv_line(first) if c):
        return "csv"
    if first in _RR_COLUMNS:  # a one-column CSV: just the RR header
        return "csv"
    if _is_number(first):
        return "text"
    if not first:
        raise RecordingError(path, None, "no data: only comments or blank lines at the start of the file")
    raise RecordingError(path, 1, f"unknown format: first line {first[:60]!r} is not a recognised header")


def _is_number(s: str) -> bool:
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


def _split_csv_line(line: str) -> list[str]:
    delim = _sniff_delimiter(line)
    return [c.strip() for c in line.split(delim)]


def _sniff_delimiter(line: str) -> str:
    for d in (",", ";", "\t"):
        if d in line:
            return d
    return ","


def _parse_float(value: str, path: Path, line: int, what: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise RecordingError(path, line, f"{what} {value.strip()[:40]!r} is not a number") from None
    if not math.isfinite(x):
        raise RecordingError(path, line, f"{what} {value.strip()!r} is not finite")
    return x


class _BeatBuilder:
    """Turns RR intervals (and optional clock times) into consistent Beat/Gap events.

    Beat times are the running sum of RR from an anchor; a clock time later than that sum
    by more than GAP_TOLERANCE_S means beats are missing, which becomes a Gap and a new anchor.
    A clock time earlier than the previous one is an error: the events must stay in time order.
    """

    def __init__(self, path: Path, person: str, device: str, source: str, start: float = 0.0):
        self.path, self.person, self.device, self.source = path, person, device, source
        self.t = start
        self.started = False
        self.last_clock: float | None = None

    def add(
        self, rr_ms: float, line: int, clock_t: float | None = None, hr: float | None = None, units: str = ""
    ) -> list[Event]:
        """The events of one beat; `units` says how the value's units were decided, for errors."""
        if not (0.0 < rr_ms <= MAX_RR_MS):
            raise RecordingError(
                self.path, line, f"RR interval {rr_ms:g} ms is not in (0, {MAX_RR_MS:g}] ms{units}"
            )
        out: list[Event] = []
        if clock_t is not None:
            if self.last_clock is not None and clock_t < self.last_clock:
                raise RecordingError(
                    self.path,
                    line,
                    f"time goes backwards: {clock_t:.3f} s is earlier than the previous "
                    f"row's {self.last_clock:.3f} s",
                )
            self.last_clock = clock_t
            if not self.started:
                self.t = clock_t - rr_ms / 1000.0
            elif clock_t - (self.t + rr_ms / 1000.0) > GAP_TOLERANCE_S:
                out.append(Gap(self.person, self.device, self.t, clock_t - rr_ms / 1000.0, "file"))
                self.t = clock_t - rr_ms / 1000.0
        self.started = True
        self.t += rr_ms / 1000.0
        out.append(Beat(self.person, self.device, self.t, rr_ms, hr_bpm=hr, source=self.source))
        return out


_Lines = Iterator[tuple[int, str]]
_Labels = list[tuple[str, str]] | None


def _sampled(rows: Iterator, n: int = UNIT_SAMPLE) -> tuple[list, Iterator]:
    """The first `n` rows, and an iterator over all rows (those first ones included)."""
    sample = list(itertools.islice(rows, n))
    return sample, itertools.chain(sample, rows)


def _unit_scale(values: list[float]) -> tuple[float, str]:
    """1000 when the RR values are in seconds (median below 10), else 1 (milliseconds); and the
    note an out-of-range value's error carries, saying which was guessed."""
    if not values:
        return 1.0, ""
    med = sorted(values)[len(values) // 2]
    unit = "seconds" if med < 10 else "milliseconds"
    note = f" (units guessed as {unit} from the median of the first {len(values)} values)"
    return (1000.0 if med < 10 else 1.0), note


def _read_text(lines: _Lines, b: _BeatBuilder, labels: _Labels) -> Iterator[Event]:
    values = ((no, _parse_float(ln.split()[0], b.path, no, "RR value")) for no, ln in _content(lines))
    sample, rows = _sampled(values)
    scale, note = _unit_scale([v for _, v in sample])
    for no, v in rows:
        yield from b.add(v * scale, no, units=note)


# Rows longer than this go through the csv module, which refuses a field over its size limit.
_PLAIN_ROW_MAX = 1024


def _csv_row(line: str, delim: str, path: Path, no: int) -> list[str]:
    s = line.rstrip("\r\n")
    if len(s) < _PLAIN_ROW_MAX and '"' not in s and "\r" not in s and "\n" not in s:
        # Without quotes or stray line breaks the csv module splits at the delimiter; a new
        # reader per row cost more than the rest of parsing a beat.
        return s.split(delim)
    try:
        return next(csv.reader([line], delimiter=delim))
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit() (128 KiB)
        raise RecordingError(path, no, f"not a valid CSV row: {exc}") from None


def _read_csv(lines: _Lines, b: _BeatBuilder, labels: _Labels) -> Iterator[Event]:
    path = b.path
    content = _content(lines)
    header_no, header_line = next(content, (None, None))
    if header_line is None:
        raise RecordingError(path, None, "no CSV header: the file has only comments or blank lines")
    delim = _sniff_delimiter(header_line)
    header = [h.strip().lower() for h in _csv_row(header_line, delim, path, header_no)]
    rr_col = next((header.index(c) for c in _RR_COLUMNS if c in header), None)
    if rr_col is None:
        raise RecordingError(
            path, header_no, f"no RR column in header {header}; name one of: {', '.join(_RR_COLUMNS)}"
        )
    time_col = next((header.index(c) for c in _TIME_COLUMNS if c in header), None)
    hr_col = next((header.index(c) for c in ("hr", "hr_bpm", "heart_rate") if c in header), None)

    def rows() -> Iterator[tuple[int, float, float | None, float | None]]:
        for no, line in content:
            row = _csv_row(line, delim, path, no)
            if len(row) <= rr_col:
                raise RecordingError(path, no, f"expected at least {rr_col + 1} columns, found {len(row)}")
            cell = row[rr_col].strip()
            if not cell:
                continue  # e.g. Polar exports: a heart-rate-only row without an RR interval
            rr = _parse_float(cell, path, no, "RR value")
            tt = None
            if time_col is not None and len(row) > time_col and row[time_col].strip():
                tt = _parse_float(row[time_col], path, no, "time")
            hr = None
            if hr_col is not None and len(row) > hr_col and row[hr_col].strip():
                hr = _parse_float(row[hr_col], path, no, "heart rate")
            yield no, rr, tt, hr

    sample, parsed = _sampled(rows())
    name = header[rr_col]
    if name.endswith("_s"):
        scale, note = 1000.0, f" (column {name!r} read as seconds)"
    elif name.endswith("_ms"):
        scale, note = 1.0, ""
    else:
        scale, note = _unit_scale([p[1] for p in sample])
    tscale = _time_scale(
        header[time_col] if time_col is not None else "", [p[2] for p in sample if p[2] is not None]
    )
    for no, rr, tt, hr in parsed:
        yield from b.add(rr * scale, no, None if tt is None else tt * tscale, hr, units=note)


def _time_scale(name: str, values: list[float]) -> float:
    """Seconds per unit of a time column, from its name or (failing that) its magnitude."""
    if name.endswith("_ns"):
        return 1e-9
    if name.endswith("_ms"):
        return 1e-3
    if name.endswith("_s") or name == "seconds" or not values:
        return 1.0
    big = max(abs(v) for v in values)
    if big > 1e17:
        return 1e-9
    if big > 1e11:
        return 1e-3
    return 1.0


def _read_nsr2db(lines: _Lines, b: _BeatBuilder, labels: _Labels) -> Iterator[Event]:
    content = _content(lines)
    next(content, None)  # the header, checked by detect_format
    for no, line in content:
        row = _csv_row(line, ",", b.path, no)
        if len(row) < 4:
            raise RecordingError(
                b.path, no, f"expected 4 columns (beat_time_s,rr_ms,label_prev,label_beat), found {len(row)}"
            )
        try:  # the common case inline; _parse_float words the error
            t, rr = float(row[0]), float(row[1])
            finite = t - t == 0.0 and rr - rr == 0.0  # inf - inf and nan - nan are nan
        except ValueError:
            finite = False
        if not finite:
            t = _parse_float(row[0], b.path, no, "beat time")
            rr = _parse_float(row[1], b.path, no, "RR value")
        yield from b.add(rr, no, clock_t=t)
        if labels is not None:
            labels.append((row[2].strip(), row[3].strip()))


def _read_ibi(lines: _Lines, b: _BeatBuilder, labels: _Labels) -> Iterator[Event]:
    """Empatica E4 IBI.csv: row 1 `<unix start>, IBI`; then `seconds_since_start, ibi_seconds`.

    The E4 drops beats during motion, so a beat whose time is later than its interval allows
    starts a new segment after a Gap (never interpolated).
    """
    _, first = next(lines, (1, ""))
    start = _parse_float(first.split(",")[0], b.path, 1, "start time")
    b.t = start
    for no, line in lines:
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) < 2:
            raise RecordingError(b.path, no, "expected `seconds_since_start, ibi_seconds`")
        t = start + _parse_float(cells[0], b.path, no, "time")
        ibi = _parse_float(cells[1], b.path, no, "IBI value")
        yield from b.add(ibi * 1000.0, no, clock_t=t, units=" (IBI column read as seconds)")


def _read_hrm(lines: _Lines, b: _BeatBuilder, labels: _Labels) -> Iterator[Event]:
    """Polar HRM: `[Params]` (Date, StartTime, Interval=238 for R-R mode) and `[HRData]` rows.

    In R-R mode the first column of each `[HRData]` row is an RR interval in milliseconds.
    """
    section = ""
    params: dict[str, tuple[str, int]] = {}  # key -> (value, line number)
    seen_data = False
    for no, line in lines:
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1].lower()
            if section == "hrdata" and not seen_data:
                seen_data = True
                interval, at = params.get("interval", ("238", None))
                if interval != "238":
                    raise RecordingError(
                        b.path, at, f"Polar HRM file is not in R-R mode (Interval={interval}, expected 238)"
                    )
                b.t = _hrm_start(params, b.path)
            continue
        if section == "params" and "=" in s:
            k, _, v = s.partition("=")
            params[k.strip().lower()] = (v.strip(), no)
        elif section == "hrdata" and s:
            yield from b.add(_parse_float(s.split()[0], b.path, no, "RR value"), no)
    if not seen_data:
        raise RecordingError(b.path, None, "Polar HRM file without an [HRData] section")


def _hrm_start(params: dict[str, tuple[str, int]], path: Path) -> float:
    """Unix time of an HRM file's Date + StartTime (taken as UTC: HRM files carry no zone).

    Without a Date the beats count from 0, like a plain text file; an unreadable one is an error."""
    if "date" not in params:
        return 0.0
    date, at = params["date"]
    try:
        day = datetime.strptime(date, "%Y%m%d").replace(tzinfo=UTC)
    except ValueError:
        raise RecordingError(path, at, f"Date {date[:40]!r} is not a date like 20080208 (YYYYMMDD)") from None
    clock, at = params.get("starttime", ("0:0:0", None))
    try:
        hh, mm, ss = clock.split(":")
        h, m, sec = int(hh), int(mm), float(ss)
        if not (0 <= h < 24 and 0 <= m < 60 and 0 <= sec < 61):
            raise ValueError
    except ValueError:
        raise RecordingError(path, at, f"StartTime {clock[:40]!r} is not a time like 08:50:31.0") from None
    return day.timestamp() + h * 3600 + m * 60 + sec


_READERS: dict[str, typing.Callable[[_Lines, _BeatBuilder, _Labels], Iterator[Event]]] = {
    "text": _read_text,
    "csv": _read_csv,
    "hrm": _read_hrm,
    "nsr2db": _read_nsr2db,
    "ibi": _read_ibi,
}


# -- accelerometer exports -------------------------------------------------------------------------

# Samples per Acceleration event read from a file (memory stays bounded whatever the file's length).
ACC_CHUNK = 512
# PMD sensor timestamps count nanoseconds from 2000-01-01T00:00:00 UTC (collector/pmd.py).
_PMD_EPOCH_UNIX = 946_684_800


def _is_polar_acc_header(line: str) -> bool:
    cells = [c.strip().lower() for c in line.split(";")]
    return "sensor timestamp [ns]" in cells and {"x [mg]", "y [mg]", "z [mg]"} <= set(cells)


def read_polar_acc(path: str | Path, person: str = "me", device: str = "file") -> Iterator[Acceleration]:
    """A Polar Sensor Logger ACC export (`Phone timestamp;sensor timestamp [ns];X [mg];Y [mg];Z [mg]`)
    as Acceleration events of up to ACC_CHUNK samples, timed by the sensor timestamp (ns since
    2000-01-01 UTC; Polar Sensor Logger sets the sensor's clock from the phone). Raises
    RecordingError (file and line) on anything else, or when time goes backwards."""
    path = Path(path)
    try:
        fh = open(path, encoding="utf-8-sig", errors="replace", newline=None)  # noqa: SIM115 -- closed below
    except OSError as exc:
        raise RecordingError(path, None, f"cannot read file: {exc.strerror or exc}") from None
    with fh:
        content = _content(_lines(fh, path))
        header_no, header = next(content, (None, ""))
        if not _is_polar_acc_header(header.lower()):
            raise RecordingError(
                path,
                header_no,
                "not a Polar Sensor Logger ACC export: expected the header "
                "`Phone timestamp;sensor timestamp [ns];X [mg];Y [mg];Z [mg]`",
            )
        names = [c.strip().lower() for c in header.split(";")]
        cols = [names.index(c) for c in ("sensor timestamp [ns]", "x [mg]", "y [mg]", "z [mg]")]
        chunk: list[tuple[float, float, float, float]] = []
        last = -math.inf
        n = 0
        for no, line in content:
            row = line.split(";")
            if len(row) <= max(cols):
                raise RecordingError(
                    path, no, f"expected {len(names)} columns separated by ';', found {len(row)}"
                )
            stamp = _parse_float(row[cols[0]], path, no, "sensor timestamp")
            t = _PMD_EPOCH_UNIX + stamp * 1e-9
            if t <= last:
                raise RecordingError(
                    path, no, f"sensor timestamp {row[cols[0]].strip()} is not later than the row before"
                )
            last = t
            chunk.append((t, *(_parse_float(row[c], path, no, f"{names[c]} value") for c in cols[1:])))
            n += 1
            if len(chunk) == ACC_CHUNK:
                yield Acceleration(person, device, *zip(*chunk, strict=True), source="file")
                chunk = []
        if chunk:
            yield Acceleration(person, device, *zip(*chunk, strict=True), source="file")
        if not n:
            raise RecordingError(path, None, "no accelerometer samples after the header")
