"""Text from outside the project (landed file names, data values, errors quoting them) made safe for one log line.

A file name may hold a newline (forging a second log line), an ANSI escape (recolouring or erasing a terminal),
a carriage return, or a Unicode bidi override (showing ``exe.parquet`` as ``parquet.exe``). Everything that is
not printable is written as a Python escape instead, so what reaches a log or an error message is one line of
visible characters that still says which file it was.
"""

from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: What replaces the rest of a text clipped by ``limit``.
ELLIPSIS = "…"


def printable(text: object, limit: int | None = None) -> str:
    """``text`` with every character that is not printable written as an escape (``\\n``, ``\\x1b``,
    ``\\u202e``), optionally clipped.

    Escaped: control characters (``\\x00``-``\\x1f``, ``\\x7f``, ``\\x80``-``\\x9f``), format characters
    (bidi overrides and isolates, zero-width characters), line and paragraph separators, lone surrogates (a
    file name that is not valid UTF-8), unassigned or private-use code points and every space but the ASCII
    space (a no-break space would pass for an ordinary one).
    A backslash is kept as it is, so escaping a text twice changes nothing: a message built from escaped parts
    can be escaped again on its way to a log.

    :param text: the text; anything else is turned into text with ``str`` first.
    :param limit: keep at most this many characters of ``text`` (before escaping) and end with ``…``;
        ``None``: all of it.
    :return: the escaped text.
    """
    text = text if isinstance(text, str) else str(text)
    clipped = limit is not None and len(text) > limit
    if clipped:
        text = text[: max(limit or 0, 0)]
    if not text.isprintable():
        text = "".join(char if char.isprintable() else _escape(char) for char in text)
    return text + ELLIPSIS if clipped else text


def _escape(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
