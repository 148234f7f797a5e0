"""Bytes + file name -> text.

Text-like files are decoded (UTF-8, UTF-8 with BOM, UTF-16 with BOM, CP932 /
Shift_JIS, EUC-JP, then UTF-8 with replacement); PDF, DOCX, XLSX and PPTX go
through pypdf, python-docx, openpyxl and python-pptx. Other types, empty
files and anything that fails to parse give a metadata-only result with an
``error`` code; extraction never raises.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from html.parser import HTMLParser
from typing import IO, Any

log = logging.getLogger(__name__)

TEXT_EXTENSIONS = frozenset(
    {
        "txt",
        "text",
        "md",
        "markdown",
        "csv",
        "tsv",
        "json",
        "log",
        "html",
        "htm",
        "xml",
        "yaml",
        "yml",
        "ini",
        "cfg",
        "conf",
    }
)
OFFICE_EXTENSIONS = frozenset({"pdf", "docx", "xlsx", "pptx"})
_TEXT_CODECS = ("utf-8", "cp932", "euc_jp")
_MAX_CONTROL_RATIO = 0.05


@dataclass(frozen=True)
class Extraction:
    """What extraction produced: text (maybe empty), method, error code."""

    text: str = ""
    method: str = "none"
    error: str | None = None
    truncated: bool = False
    metadata_only: bool = False

    @property
    def error_code(self) -> str | None:
        """The code part of ``error`` (``corrupt-pdf`` of ``corrupt-pdf: ...``)."""
        return self.error.split(":", 1)[0] if self.error else None


def metadata_only(reason: str, method: str = "none") -> Extraction:
    """A metadata-only result with ``reason`` as its error."""
    return Extraction(text="", method=method, error=reason, metadata_only=True)


def extension_of(name: str) -> str:
    """Lower-case extension without the dot ("" if none)."""
    return posixpath.splitext(posixpath.basename(name))[1].lower().lstrip(".")


def extract(stream: IO[bytes], name: str, size: int, max_chars: int = 1_000_000) -> Extraction:
    """Extract text from ``stream`` (``size`` bytes) named ``name``; never raises."""
    ext = extension_of(name)
    if size == 0:
        return metadata_only("empty-file: zero-byte object", method=ext or "none")
    handler: Callable[[IO[bytes], int], Extraction]
    if ext in TEXT_EXTENSIONS:
        handler = partial(_text, ext)
    elif ext in _OFFICE:
        handler = _OFFICE[ext]
    else:
        return Extraction(method="none", metadata_only=True)
    try:
        return handler(stream, max_chars)
    except Exception as exc:
        code = f"corrupt-{ext}" if ext in OFFICE_EXTENSIONS else "extraction-failed"
        log.debug("extraction of %s failed", name, exc_info=True)
        return metadata_only(f"{code}: {type(exc).__name__}: {str(exc)[:300]}", method=ext)


def _truncate(text: str, max_chars: int) -> tuple[str, bool]:
    if len(text) > max_chars:
        return text[:max_chars], True
    return text, False


def decode_text(data: bytes) -> tuple[str, str, str | None]:
    """Decode bytes: returns (text, encoding used, error code or None)."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data.decode("utf-8-sig"), "utf-8-sig", None
        except UnicodeDecodeError:
            pass
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16", None
        except UnicodeDecodeError:
            pass
    if _looks_binary(data):
        return "", "binary", "binary-content: file has the bytes of a binary, not text"
    for codec in _TEXT_CODECS:
        try:
            return data.decode(codec), codec, None
        except UnicodeDecodeError:
            continue
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    return text, "utf-8-replace", f"undecodable: {bad} byte sequences replaced"


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    control = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return control > len(sample) * _MAX_CONTROL_RATIO


class _HTMLText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


_TAG = re.compile(r"<[^>]*>")
_WS = re.compile(r"[ \t\r\f\v]*\n[\s]*")


def _text(ext: str, stream: IO[bytes], max_chars: int) -> Extraction:
    # 4 bytes per character at most in the encodings tried
    data = stream.read(max_chars * 4 + 4)
    text, encoding, error = decode_text(data)
    if error and error.startswith("binary-content"):
        return metadata_only(error, method="text")
    if ext in ("html", "htm"):
        parser = _HTMLText()
        parser.feed(text)
        parser.close()
        text = _WS.sub("\n", "".join(parser.parts)).strip()
    elif ext == "xml":
        text = _WS.sub("\n", _TAG.sub(" ", text)).strip()
    text, truncated = _truncate(text, max_chars)
    return Extraction(text=text, method=f"text/{encoding}", error=error, truncated=truncated)


def _collect(parts: Iterator[str], max_chars: int) -> tuple[str, bool]:
    out: list[str] = []
    total = 0
    for part in parts:
        if not part:
            continue
        out.append(part)
        total += len(part) + 1
        if total > max_chars:
            return _truncate("\n".join(out), max_chars)[0], True
    return "\n".join(out), False


def _pdf(stream: IO[bytes], max_chars: int) -> Extraction:
    from pypdf import PdfReader

    reader = PdfReader(_seekable(stream))
    if reader.is_encrypted:
        try:
            reader.decrypt("")
        except Exception as exc:  # noqa: BLE001 - pypdf raises assorted types for bad encryption
            return metadata_only(f"encrypted-pdf: {exc}", method="pdf")

    def pages() -> Iterator[str]:
        for page in reader.pages:
            yield page.extract_text() or ""

    text, truncated = _collect(pages(), max_chars)
    return Extraction(text=text, method="pdf", truncated=truncated)


def _docx(stream: IO[bytes], max_chars: int) -> Extraction:
    import docx

    document = docx.Document(_seekable(stream))

    def parts() -> Iterator[str]:
        for paragraph in document.paragraphs:
            yield paragraph.text
        for table in document.tables:
            for row in table.rows:
                yield "\t".join(cell.text for cell in row.cells)

    text, truncated = _collect(parts(), max_chars)
    return Extraction(text=text, method="docx", truncated=truncated)


def _xlsx(stream: IO[bytes], max_chars: int) -> Extraction:
    import openpyxl

    workbook = openpyxl.load_workbook(_seekable(stream), read_only=True, data_only=True)
    try:

        def rows() -> Iterator[str]:
            for sheet in workbook.worksheets:
                yield f"# {sheet.title}"
                for row in sheet.iter_rows(values_only=True):
                    cells = [str(c) for c in row if c is not None]
                    if cells:
                        yield "\t".join(cells)

        text, truncated = _collect(rows(), max_chars)
    finally:
        workbook.close()
    return Extraction(text=text, method="xlsx", truncated=truncated)


def _pptx(stream: IO[bytes], max_chars: int) -> Extraction:
    from pptx import Presentation

    presentation = Presentation(_seekable(stream))

    def parts() -> Iterator[str]:
        for slide in presentation.slides:
            for shape in slide.shapes:
                if getattr(shape, "has_text_frame", False):
                    yield shape.text_frame.text
            if slide.has_notes_slide:
                yield slide.notes_slide.notes_text_frame.text

    text, truncated = _collect(parts(), max_chars)
    return Extraction(text=text, method="pptx", truncated=truncated)


def _seekable(stream: IO[bytes]) -> IO[bytes]:
    if stream.seekable():
        return stream
    return io.BytesIO(stream.read())


_OFFICE: dict[str, Callable[[IO[bytes], int], Extraction]] = {
    "pdf": _pdf,
    "docx": _docx,
    "xlsx": _xlsx,
    "pptx": _pptx,
}
