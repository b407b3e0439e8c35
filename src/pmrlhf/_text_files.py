"""Reading a user's text file: it exists and is a file, it is UTF-8 text and not binary.

Every message is one line that names the file as the caller calls it (``--config``,
``task file``, ``preference file``) and its path.
"""

from __future__ import annotations

from pathlib import Path

from .errors import PmrlhfUserError


def existing_file(path, *, name: str) -> Path:
    """``path`` as a :class:`~pathlib.Path`, refused unless it names an existing file.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    PmrlhfUserError
        ``path`` is a folder.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{name} {path} does not exist")
    if path.is_dir():
        raise PmrlhfUserError(f"{name} {path} is a folder, not a file")
    return path


def check_text_file(path, *, name: str, chunk: int = 1 << 20) -> Path:
    """Refuse a path that is not a readable UTF-8 text file, reading it through once in
    chunks (for files too large to hold, such as a JSONL of pairs).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    PmrlhfUserError
        A folder, an unreadable file, a NUL byte (binary) or bytes that are not UTF-8
        (Latin-1); one line naming ``name`` and the path.
    """
    import codecs

    path = existing_file(path, name=name)
    source = f"{name} {path}"
    decoder, offset = codecs.getincrementaldecoder("utf-8")(), 0
    try:
        with path.open("rb") as handle:
            while block := handle.read(chunk):
                if b"\0" in block:
                    raise PmrlhfUserError(
                        f"{source} is a binary file (a NUL byte at offset "
                        f"{offset + block.index(0)})"
                    )
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as err:
                    raise PmrlhfUserError(
                        f"{source} is not UTF-8 text (byte {block[err.start]:#04x} near offset "
                        f"{offset + err.start})"
                    ) from None
                offset += len(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise PmrlhfUserError(f"{source} is not UTF-8 text (it ends inside a character)") from None
    except OSError as err:
        raise PmrlhfUserError(f"{source} could not be read: {err.strerror or err}") from None
    return path


def decode_text(raw: bytes, *, source: str) -> str:
    """``raw`` as UTF-8 text (a leading byte-order mark dropped).

    Raises
    ------
    PmrlhfUserError
        A NUL byte (a binary file) or bytes that are not UTF-8 (Latin-1, say); one line
        naming ``source`` and the offset.
    """
    if b"\0" in raw:
        raise PmrlhfUserError(f"{source} is a binary file (a NUL byte at offset {raw.index(0)})")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise PmrlhfUserError(
            f"{source} is not UTF-8 text (byte {raw[err.start]:#04x} at offset {err.start})"
        ) from None
