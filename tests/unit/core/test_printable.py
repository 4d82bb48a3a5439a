"""Escaping text from outside (landed file names, values) before it reaches a log line or an error message."""

from __future__ import annotations

import pytest

from mlops_ops.core.printable import printable


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("part-0.parquet", "part-0.parquet"),
        ("month=2013-01/part 0.parquet", "month=2013-01/part 0.parquet"),
        ("a\nFAKE LOG LINE", "a\\nFAKE LOG LINE"),
        ("\x1b[31mred\x1b[0m.parquet", "\\x1b[31mred\\x1b[0m.parquet"),
        ("ok\rgone", "ok\\rgone"),
        ("tab\there", "tab\\there"),
        ("nul\x00del\x7f", "nul\\x00del\\x7f"),
        ("c1\x85\x9b", "c1\\x85\\x9b"),
        ("invoice\u202egpj.parquet", "invoice\\u202egpj.parquet"),  # shows as ...parquet.jpg
        ("iso\u2066late\u2069", "iso\\u2066late\\u2069"),
        ("zero\u200bwidth", "zero\\u200bwidth"),
        ("line\u2028sep", "line\\u2028sep"),
        ("no\u00a0break", "no\\xa0break"),
        ("bad utf-8 \udcff", "bad utf-8 \\udcff"),
        ("privé/日本語.parquet", "privé/日本語.parquet"),
    ],
)
def test_what_is_not_printable_is_escaped_and_the_rest_kept(raw, escaped):
    assert printable(raw) == escaped
    assert printable(escaped) == escaped  # escaping twice changes nothing
    assert printable(raw).isprintable()


def test_a_clipped_text_ends_with_an_ellipsis_and_short_ones_are_whole():
    assert printable("abcdef", limit=3) == "abc…"
    assert printable("abc", limit=3) == "abc"
    assert printable("\n" * 10, limit=2) == "\\n\\n…"


def test_anything_is_turned_into_text():
    assert printable(ValueError("bad\nname")) == "bad\\nname"
    assert printable(42) == "42"
