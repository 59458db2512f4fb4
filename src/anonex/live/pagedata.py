"""Tags in pages: how a scenario's short strings are laid out in 4096-byte pages.

A written page holds the tag's UTF-8 bytes followed by zeros up to the page end; a page's
tag is its bytes up to the first NUL (so a never-written page reads ""); a read over several
pages joins them with :func:`anonex.scenario.ast.join_tags`. Pure functions; nothing fails
(undecodable bytes are replaced).
"""

from __future__ import annotations

PAGE = 4096


def page_bytes(tag: str, size: int = PAGE) -> bytes:
    """The page contents for *tag* (``ValueError`` if the tag does not fit)."""
    raw = tag.encode("utf-8")
    if len(raw) >= size:
        raise ValueError(f"tag of {len(raw)} bytes does not fit a {size}-byte page")
    return raw + b"\0" * (size - len(raw))


def tag_of(data: bytes) -> str:
    """The tag held by one page's bytes."""
    end = data.find(b"\0")
    return (data if end < 0 else data[:end]).decode("utf-8", errors="replace")


def tags_of(data: bytes, size: int = PAGE) -> list[str]:
    """The tag of each page of a multi-page buffer (a short last page counts as a page)."""
    return [tag_of(data[i:i + size]) for i in range(0, len(data), size)]
