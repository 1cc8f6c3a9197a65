"""Why a data file could not be read, in one line: the file, the likely cause (not UTF-8, a malformed CSV row or
JSON line, no rows, not the stated format) with the line where the parser says, and the fix."""

from __future__ import annotations

import json
from contextlib import suppress
from pathlib import Path

from elicit.datasets.items import DataError


def read_errors() -> tuple[type[BaseException], ...]:
    """What reading a bad file raises: ValueError (pandas parser/empty-data errors, JSON and Unicode errors),
    OSError and Arrow errors."""
    errors: list[type[BaseException]] = [ValueError, OSError]
    with suppress(ImportError):
        import pyarrow

        errors.append(pyarrow.ArrowException)
    return tuple(errors)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first (``raise ... from``, else the implicit context)."""
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 10:
        out.append(cur)
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return out


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _utf8_problem(path: Path) -> tuple[str, str] | None:
    """('byte 0xe9 on line 2', a likely source encoding) where ``path`` is first not UTF-8; None when it decodes."""
    try:
        data = path.read_bytes()
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "latin1"
        return f"byte 0x{data[e.start]:02x} on line {line}", encoding
    except OSError:
        return None
    return None


def _json_problem(path: Path) -> str | None:
    """'line N: message' where a JSON / JSON Lines file first fails to parse, or None when it parses."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    try:
        json.loads(first)
        json_lines = True
    except json.JSONDecodeError:
        json_lines = False
    if json_lines:  # one object per line: the first line that does not parse
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    json.loads(line)
                except json.JSONDecodeError as e:
                    return f"line {n}: {e.msg} at column {e.colno}"
        return None
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        return f"line {e.lineno}: {e.msg} at column {e.colno}"
    return None


def read_error(exc: BaseException, path: Path, fmt: str | None, where: str, key: str) -> DataError:
    """Turn a failed read into one line: the file, the likely cause (encoding, a malformed row, no rows, not this
    format) and the fix; ``key`` is the params key naming the file (``datasets.<name>.path``)."""
    fmt_key = f"{key.rsplit('.', 1)[0]}.format"
    chain = _chain(exc)
    inner = chain[-1]
    names = {type(e).__name__ for e in chain}
    text = " ".join(_first_line(e) for e in chain)
    fmt = fmt or ("a folder of tables" if path.is_dir() else "a table")
    if "corresponds to no data" in text or "EmptyDataError" in names:
        return DataError(f"{where} has no rows (empty, or a header only); add data rows or fix {key}")
    if fmt != "parquet" and path.is_file():
        bad = _utf8_problem(path) if "UnicodeDecodeError" in names or fmt in ("csv", "json", "jsonl") else None
        if bad:
            return DataError(
                f"{where} is not UTF-8 text ({bad[0]}); re-save it as UTF-8, e.g. "
                f"`iconv -f {bad[1]} -t utf-8 {path.name} > utf8_{path.name}` (with the file's real encoding after "
                f"-f), and point {key} at the new file"
            )
    if "ParserError" in names:
        detail = _first_line(next(e for e in chain if type(e).__name__ == "ParserError"))
        detail = detail.removeprefix("Error tokenizing data. ").removeprefix("C error: ")
        return DataError(
            f"{where} has a malformed CSV row ({detail}); fix that line (quote fields that contain commas or "
            "quotes, one record per line) or re-export the file"
        )
    if fmt in ("json", "jsonl") and path.is_file():
        problem = _json_problem(path)
        if problem:
            return DataError(
                f"{where} is not valid JSON ({problem}); fix it there (JSON Lines: one complete object per line) "
                "or re-export the file"
            )
    hint = f"check that it is a {fmt} file, or set {fmt_key}"
    if "Failed to parse" in text or "Could not convert" in text or "cast" in text.lower():
        hint = "a column mixes numbers and text (its type is guessed from the first rows); make its values consistent"
    return DataError(f"{where} could not be read as {fmt} ({type(inner).__name__}: {_first_line(inner)}); {hint}")
