"""extract.extract: text decoding, office formats, and metadata-only results that never raise."""

from __future__ import annotations

import io

import docx
import openpyxl
import pytest
from pptx import Presentation
from pptx.util import Inches

from filesearch_worker.extract import decode_text, extract


def run(data: bytes, name: str, max_chars: int = 1_000_000):  # type: ignore[no-untyped-def]
    return extract(io.BytesIO(data), name, len(data), max_chars)


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (hand-built, with a correct xref table)."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def office_bytes(kind: str) -> bytes:
    buffer = io.BytesIO()
    if kind == "docx":
        document = docx.Document()
        document.add_paragraph("Quarterly report 四半期")
        table = document.add_table(rows=1, cols=2)
        table.rows[0].cells[0].text = "cell-a"
        table.rows[0].cells[1].text = "cell-b"
        document.save(buffer)
    elif kind == "xlsx":
        workbook = openpyxl.Workbook()
        sheet = workbook.active
        assert sheet is not None
        sheet.title = "Budget"
        sheet.append(["item", "yen"])
        sheet.append(["coffee", 450])
        workbook.save(buffer)
    else:
        presentation = Presentation()
        slide = presentation.slides.add_slide(presentation.slide_layouts[5])
        assert slide.shapes.title is not None
        slide.shapes.title.text = "Roadmap"
        box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(4), Inches(1))
        box.text_frame.text = "ship the worker"
        presentation.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "name", "expected", "encoding"),
    [
        (b"hello world", "a.txt", "hello world", "utf-8"),
        ("日本語のテキスト".encode(), "a.md", "日本語のテキスト", "utf-8"),
        ("\ufeffBOM text".encode(), "a.csv", "BOM text", "utf-8-sig"),
        ("シフトJISの文書".encode("cp932"), "a.log", "シフトJISの文書", "cp932"),
        ("utf16 text".encode("utf-16"), "a.txt", "utf16 text", "utf-16"),
        (b'{"k": "v"}', "a.json", '{"k": "v"}', "utf-8"),
    ],
)
def test_text_decoding(data: bytes, name: str, expected: str, encoding: str) -> None:
    result = run(data, name)
    assert result.text == expected
    assert result.method == f"text/{encoding}"
    assert result.error is None
    assert not result.metadata_only


def test_undecodable_text_is_replaced_not_fatal() -> None:
    text, encoding, error = decode_text(b"caf\xe9 \x81\xff\xfe ok")
    assert encoding == "utf-8-replace"
    assert error is not None and error.startswith("undecodable")
    assert text.endswith(" ok")


def test_html_and_xml_lose_their_markup() -> None:
    html = (
        b"<html><head><style>p{}</style><script>x()</script></head>"
        b"<body><p>Hi &amp; bye</p></body></html>"
    )
    assert run(html, "page.html").text == "Hi & bye"
    assert run(b"<a><b>one</b><c>two</c></a>", "d.xml").text.split() == ["one", "two"]


def test_binary_disguised_as_text_is_metadata_only() -> None:
    result = run(bytes(range(256)) * 10, "blob.txt")
    assert result.metadata_only
    assert result.error_code == "binary-content"


def test_zero_byte_file() -> None:
    result = run(b"", "empty.pdf")
    assert result.metadata_only
    assert result.error_code == "empty-file"


def test_unsupported_type_is_metadata_only_without_error() -> None:
    result = run(b"\x00\x01binary", "archive.bin")
    assert result.metadata_only
    assert result.error is None


def test_truncation() -> None:
    result = run(b"abcdefghij" * 100, "a.txt", max_chars=25)
    assert result.truncated
    assert len(result.text) == 25


def test_pdf() -> None:
    result = run(minimal_pdf("Hello PDF world"), "doc.pdf")
    assert result.method == "pdf"
    assert "Hello PDF world" in result.text


@pytest.mark.parametrize(
    ("kind", "needles"),
    [
        ("docx", ["Quarterly report 四半期", "cell-a\tcell-b"]),
        ("xlsx", ["# Budget", "coffee\t450"]),
        ("pptx", ["Roadmap", "ship the worker"]),
    ],
)
def test_office_formats(kind: str, needles: list[str]) -> None:
    result = run(office_bytes(kind), f"file.{kind}")
    assert result.method == kind
    assert result.error is None
    for needle in needles:
        assert needle in result.text


@pytest.mark.parametrize(
    ("data", "name", "code"),
    [
        (b"%PDF-1.4 this is not really a pdf", "bad.pdf", "corrupt-pdf"),
        (b"PK\x03\x04 truncated zip", "bad.docx", "corrupt-docx"),
        (b"not a workbook", "bad.xlsx", "corrupt-xlsx"),
        (b"not a deck", "bad.pptx", "corrupt-pptx"),
        (minimal_pdf("x")[:60], "cut.pdf", "corrupt-pdf"),
    ],
)
def test_corrupt_files_never_raise(data: bytes, name: str, code: str) -> None:
    result = run(data, name)
    assert result.metadata_only
    assert result.error_code == code
