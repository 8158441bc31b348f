"""Import recorded RR series (text, CSV, Polar HRM, nsr2db CSV, Empatica IBI.csv) as Beat/Gap events."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from collector.events import GAP_TOLERANCE_S, Beat, Event, Gap

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
    """Read `path` in format `fmt` (`auto` detects it). Raises RecordingError on bad input."""
    path = Path(path)
    if fmt not in FORMATS:
        raise RecordingError(path, None, f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecordingError(path, None, f"cannot read file: {exc.strerror or exc}") from None
    if b"\x00" in raw[:4096]:
        raise RecordingError(path, None, "binary data, not an RR recording")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    if not text.strip():
        raise RecordingError(path, None, "file is empty")
    if fmt == "auto":
        fmt = detect_format(text, path)
    reader = _READERS[fmt]
    rec = reader(text, path, person, device)
    if not rec.beats:
        raise RecordingError(path, None, f"no RR intervals found (read as {fmt})")
    return rec


def detect_format(text: str, path: str | Path = "<text>") -> str:
    """Guess the format from the content: HRM section headers, CSV headers, IBI start row, numbers."""
    first = next((ln.strip().lower() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
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
    if _is_number(first):
        return "text"
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
    """

    def __init__(self, path: Path, person: str, device: str, source: str, start: float = 0.0):
        self.path, self.person, self.device, self.source = path, person, device, source
        self.events: list[Event] = []
        self.t = start
        self.started = False

    def add(self, rr_ms: float, line: int, clock_t: float | None = None, hr: float | None = None) -> None:
        if not (0.0 < rr_ms <= MAX_RR_MS):
            raise RecordingError(self.path, line, f"RR interval {rr_ms:g} ms is not in (0, {MAX_RR_MS:g}] ms")
        if clock_t is not None:
            if not self.started:
                self.t = clock_t - rr_ms / 1000.0
            elif clock_t - (self.t + rr_ms / 1000.0) > GAP_TOLERANCE_S:
                self.events.append(Gap(self.person, self.device, self.t, clock_t - rr_ms / 1000.0, "file"))
                self.t = clock_t - rr_ms / 1000.0
        self.started = True
        self.t += rr_ms / 1000.0
        self.events.append(Beat(self.person, self.device, self.t, rr_ms, hr_bpm=hr, source=self.source))


def _read_text(text: str, path: Path, person: str, device: str) -> Recording:
    values: list[tuple[int, float]] = []
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        values.append((no, _parse_float(s.split()[0], path, no, "RR value")))
    scale = _unit_scale([v for _, v in values])
    b = _BeatBuilder(path, person, device, "text")
    for no, v in values:
        b.add(v * scale, no)
    return Recording(str(path), "text", b.events)


def _unit_scale(values: list[float]) -> float:
    """1000 when the RR values are in seconds (median below 10), else 1 (milliseconds)."""
    if not values:
        return 1.0
    med = sorted(values)[len(values) // 2]
    return 1000.0 if med < 10 else 1.0


def _read_csv(text: str, path: Path, person: str, device: str) -> Recording:
    numbered = [(no, ln) for no, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")]
    delim = _sniff_delimiter(numbered[0][1])
    header_no = numbered[0][0]
    header = [h.strip().lower() for h in next(csv.reader([numbered[0][1]], delimiter=delim))]
    rr_col = next((header.index(c) for c in _RR_COLUMNS if c in header), None)
    if rr_col is None:
        raise RecordingError(
            path, header_no, f"no RR column in header {header}; name one of: {', '.join(_RR_COLUMNS)}"
        )
    time_col = next((header.index(c) for c in _TIME_COLUMNS if c in header), None)
    hr_col = next((header.index(c) for c in ("hr", "hr_bpm", "heart_rate") if c in header), None)
    parsed: list[tuple[int, float, float | None, float | None]] = []
    for no, line in numbered[1:]:
        row = next(csv.reader([line], delimiter=delim))
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
        parsed.append((no, rr, tt, hr))
    name = header[rr_col]
    scale = 1000.0 if name.endswith("_s") else 1.0 if name.endswith("_ms") else _unit_scale([p[1] for p in parsed])
    tscale = _time_scale(header[time_col] if time_col is not None else "", [p[2] for p in parsed if p[2] is not None])
    b = _BeatBuilder(path, person, device, "csv")
    for no, rr, tt, hr in parsed:
        b.add(rr * scale, no, None if tt is None else tt * tscale, hr)
    return Recording(str(path), "csv", b.events)


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


def _read_nsr2db(text: str, path: Path, person: str, device: str) -> Recording:
    rows = csv.reader(io.StringIO(text))
    next(rows)
    b = _BeatBuilder(path, person, device, "nsr2db")
    labels: list[tuple[str, str]] = []
    for no, row in enumerate(rows, 2):
        if not row:
            continue
        if len(row) < 4:
            raise RecordingError(path, no, f"expected 4 columns (beat_time_s,rr_ms,label_prev,label_beat), found {len(row)}")
        t = _parse_float(row[0], path, no, "beat time")
        rr = _parse_float(row[1], path, no, "RR value")
        b.add(rr, no, clock_t=t)
        labels.append((row[2].strip(), row[3].strip()))
    return Recording(str(path), "nsr2db", b.events, labels)


def _read_ibi(text: str, path: Path, person: str, device: str) -> Recording:
    """Empatica E4 IBI.csv: row 1 `<unix start>, IBI`; then `seconds_since_start, ibi_seconds`.

    The E4 drops beats during motion, so a beat whose time is later than its interval allows
    starts a new segment after a Gap (never interpolated).
    """
    lines = text.splitlines()
    start = _parse_float(lines[0].split(",")[0], path, 1, "start time")
    b = _BeatBuilder(path, person, device, "ibi", start)
    for no, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) < 2:
            raise RecordingError(path, no, "expected `seconds_since_start, ibi_seconds`")
        t = start + _parse_float(cells[0], path, no, "time")
        ibi = _parse_float(cells[1], path, no, "IBI value")
        b.add(ibi * 1000.0, no, clock_t=t)
    return Recording(str(path), "ibi", b.events)


def _read_hrm(text: str, path: Path, person: str, device: str) -> Recording:
    """Polar HRM: `[Params]` (Date, StartTime, Interval=238 for R-R mode) and `[HRData]` rows.

    In R-R mode the first column of each `[HRData]` row is an RR interval in milliseconds.
    """
    section = ""
    params: dict[str, str] = {}
    data: list[tuple[int, str]] = []
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1].lower()
            continue
        if section == "params" and "=" in s:
            k, _, v = s.partition("=")
            params[k.strip().lower()] = v.strip()
        elif section == "hrdata" and s:
            data.append((no, s))
    if not data:
        raise RecordingError(path, None, "Polar HRM file without an [HRData] section")
    if params.get("interval", "238") != "238":
        raise RecordingError(
            path, None, f"Polar HRM file is not in R-R mode (Interval={params['interval']}, expected 238)"
        )
    b = _BeatBuilder(path, person, device, "hrm", _hrm_start(params))
    for no, s in data:
        b.add(_parse_float(s.split()[0], path, no, "RR value"), no)
    return Recording(str(path), "hrm", b.events)


def _hrm_start(params: dict[str, str]) -> float:
    """Unix time of an HRM file's Date + StartTime (taken as UTC: HRM files carry no zone)."""
    try:
        day = datetime.strptime(params.get("date", ""), "%Y%m%d")
        hh, mm, ss = params.get("starttime", "0:0:0").split(":")
        return day.replace(tzinfo=UTC).timestamp() + int(hh) * 3600 + int(mm) * 60 + float(ss)
    except ValueError:
        return 0.0


_READERS = {
    "text": _read_text,
    "csv": _read_csv,
    "hrm": _read_hrm,
    "nsr2db": _read_nsr2db,
    "ibi": _read_ibi,
}
