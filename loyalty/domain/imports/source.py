"""The import file's encoding: found or given, and proven for the whole file before a row is read.

What can be told safely is told from the bytes: a UTF-8 byte-order mark (Excel's "CSV UTF-8")
means UTF-8; a file that is valid UTF-8 throughout is UTF-8 (text in another encoding is almost
never valid UTF-8 by chance); a file that is not is read as Windows-1252, what a Dutch till or
Excel's plain "CSV" writes, and the caller says so. A byte Windows-1252 does not define
(0x81, 0x8d, 0x8f, 0x90, 0x9d) ends it there, and so do bytes that spell a character as UTF-8
does (`é` as C3 A9) in a file that is not UTF-8 throughout: a file of two encodings, whose UTF-8
part would turn into `Ã©`. The encoding is then for the user to give. A given
encoding (`--encoding`) is used as given. Either way every byte of the file is decoded once here,
so a wrong encoding stops the import with the line of the first undecodable byte before anything
is written. UTF-16 and UTF-32 (Excel's "Unicode text") are refused: save the file as CSV.
"""

from __future__ import annotations

import codecs
import io
import re
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from loyalty.domain.imports.parse import ImportFileError

CHUNK = 1 << 20
FALLBACK = "cp1252"
_ASCII_SAMPLE = "customer_ref,external_id;occurred_at\tamount 0123456789.\r\n"
_WIDE_BOMS = (
    codecs.BOM_UTF32_LE,  # before UTF-16 LE, which it starts with
    codecs.BOM_UTF32_BE,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
)


@dataclass(frozen=True)
class Encoding:
    codec: str  # Python's name of it, for io.TextIOWrapper
    how: str  # why this one, for the user

    def __str__(self) -> str:
        return f"{_LABELS.get(self.codec, self.codec)} ({self.how})"


_LABELS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", FALLBACK: "Windows-1252"}


def codec_name(encoding: str) -> str:
    """Python's name of `encoding`, which must keep ASCII as ASCII (a CSV's delimiters, digits
    and line ends are read byte-wise). Raises ValueError."""
    try:
        codec = codecs.lookup(encoding).name
        if codec == "utf-8-sig":
            return "utf-8"  # a byte-order mark is dropped where there is one
        kept = _ASCII_SAMPLE.encode(codec) == _ASCII_SAMPLE.encode("ascii")
    except (LookupError, UnicodeError):
        raise ValueError(f"{encoding!r} is not a text encoding Python knows") from None
    if not kept:
        raise ValueError(f"{encoding!r} does not keep ASCII as it is (UTF-16?); save as CSV")
    return codec


def detect(data: BinaryIO, given: str | None = None) -> Encoding:
    """The encoding of the seekable binary file `data`, every byte proven decodable; `data` is
    left at its start. Raises ImportFileError (line-numbered) and ValueError (`given` unknown)."""
    data.seek(0)
    head = data.read(4)
    data.seek(0)
    if head.startswith(_WIDE_BOMS):
        raise ImportFileError(
            "line 1: the file is UTF-16 or UTF-32 (Excel's 'Unicode text'); save it as "
            "'CSV UTF-8' or 'CSV' and import that"
        )
    bom = head.startswith(codecs.BOM_UTF8)
    if given is not None:
        codec = codec_name(given)
        if bom and codec != "utf-8":
            raise ImportFileError(
                f"line 1: the file starts with a UTF-8 byte-order mark, not {given} text"
            )
        _prove(data, codec, len(codecs.BOM_UTF8) if bom else 0)
        return Encoding("utf-8-sig" if bom else codec, "as given")
    if bom:
        _prove(data, "utf-8", len(codecs.BOM_UTF8))
        return Encoding("utf-8-sig", "byte-order mark")
    return _guessed(data)


def _guessed(data: BinaryIO) -> Encoding:
    """UTF-8 if every byte decodes so, else Windows-1252 if every byte decodes so and no bytes
    read as UTF-8 (a file with both would turn its UTF-8 é into Ã©). Raises ImportFileError."""
    try:
        _prove(data, "utf-8", 0)
        return Encoding("utf-8", "valid UTF-8 throughout")
    except Undecodable as exc:
        not_utf8 = exc.where()
    try:
        _prove(data, FALLBACK, 0)
    except Undecodable as neither:
        raise ImportFileError(
            f"{neither}, and {not_utf8} is not UTF-8: give the file's encoding with --encoding"
        ) from None
    mixed = _utf8_sequence(data)
    if mixed is not None:
        raise ImportFileError(
            f"line {mixed[0]}: {mixed[1].decode()!r} is written in UTF-8, but {not_utf8} is "
            "not UTF-8: the file mixes encodings; give the one to read it with --encoding"
        )
    return Encoding(FALLBACK, f"{not_utf8} is not UTF-8; --encoding to say otherwise")


# A character of two to four bytes as UTF-8 writes it; in Windows-1252 text such pairs are rare
# (a capital with an accent directly followed by a symbol such as '€', '±' or '¿').
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _utf8_sequence(data: BinaryIO) -> tuple[int, bytes] | None:
    """(line, bytes) of the first character of `data` written as UTF-8 writes it, if any; leaves
    `data` at its start. Chunks overlap by three bytes, so no character is cut in two."""
    data.seek(0)
    start, carried = 0, b""
    try:
        while chunk := data.read(CHUNK):
            window = carried + chunk
            found = _UTF8_SEQUENCE.search(window)
            if found is not None:
                offset = start - len(carried) + found.start()
                return _line_at(data, offset), found.group()
            start += len(chunk)
            carried = window[-3:]
        return None
    finally:
        data.seek(0)


def text(data: BinaryIO, encoding: Encoding) -> TextIO:
    """`data` (at its start) as text for the csv module (line ends as they are)."""
    return io.TextIOWrapper(data, encoding=encoding.codec, newline="")


class Undecodable(ImportFileError):
    """A byte the encoding does not define, on line `line`."""

    def __init__(self, line: int, byte: bytes, encoding: str) -> None:
        self.line, self.byte, self.encoding = line, byte, encoding
        super().__init__(f"line {line}: byte 0x{byte.hex()} is not {encoding}")

    def where(self) -> str:
        return f"byte 0x{self.byte.hex()} on line {self.line}"


def _prove(data: BinaryIO, codec: str, start: int) -> None:
    """Decodes `data` from byte `start` to its end; leaves it at its start. Raises
    ImportFileError naming the line of the first byte that is not `codec`."""
    decoder = codecs.getincrementaldecoder(codec)()
    position = start
    data.seek(start)
    try:
        while True:
            chunk = data.read(CHUNK)
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                line = _line_at(data, position - pending + exc.start)
                bad = exc.object[exc.start : exc.start + 1]
                raise Undecodable(line, bad, _LABELS.get(codec, codec)) from None
            if not chunk:
                return
            position += len(chunk)
    finally:
        data.seek(0)


def _line_at(data: BinaryIO, offset: int) -> int:
    """The line (from 1) byte `offset` of `data` is on, lines ended by LF, CR LF or CR as the csv
    module reads them."""
    data.seek(0)
    ends = 0
    left = offset
    after_cr = False
    while left > 0:
        chunk = data.read(min(CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
        ends += chunk.count(b"\n") + chunk.count(b"\r") - chunk.count(b"\r\n")
        if after_cr and chunk.startswith(b"\n"):
            ends -= 1  # a CR LF across two chunks
        after_cr = chunk.endswith(b"\r")
    return ends + 1


def seekable(data: BinaryIO) -> BinaryIO:
    """`data` itself where it can seek (a file), else its bytes read into memory (a pipe)."""
    if data.seekable():
        return data
    return io.BytesIO(data.read())


def size(data: BinaryIO) -> int:
    """The bytes of the seekable `data`; leaves it at its start."""
    end = data.seek(0, io.SEEK_END)
    data.seek(0)
    return end
