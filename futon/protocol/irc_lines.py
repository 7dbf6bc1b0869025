"""The IRC wire: one message shape, its parser and renderer, and the
rfc1459 case mapping — nothing about sockets or server state.

A line is ``[@tags ][:source ]COMMAND[ param…][ :trailing]`` (RFC 1459 §2.3,
RFC 2812 §2.3.1, IRCv3 message-tags). :func:`parse_line` turns one decoded
line (without its CR LF) into a :class:`Message`; :func:`render` turns a
:class:`Message` back into a line, so ``parse_line(render(m)) == m`` for
every message ``render`` accepts. :class:`LineBuffer` cuts a byte stream into
lines and flags the ones that are too long to be IRC, so a reader never holds
more than one line's worth of garbage in memory.

Limits, in bytes: the non-tag part of a line is at most 512 including CR LF
(:data:`MAX_LINE_BYTES`); the tag section (``@`` through its space) at most
8191 (:data:`MAX_TAGS_BYTES`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from futon.protocol.errors import ProtocolError

MAX_LINE_BYTES = 512
"""RFC 1459: a line, CR LF included, is at most 512 bytes (tags excluded)."""
MAX_BODY_BYTES = MAX_LINE_BYTES - 2
MAX_TAGS_BYTES = 8191
"""IRCv3 message-tags: the tag section, ``@`` and trailing space included."""

NICKLEN = 30
CHANNELLEN = 50

_TAG_ESCAPES = {";": r"\:", " ": r"\s", "\\": "\\\\", "\r": r"\r", "\n": r"\n"}
_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_COMMAND = re.compile(r"^(?:[A-Za-z]+|[0-9]{3})$")
# RFC 2812 §2.3.1: nickname = ( letter / special ) *( letter / digit / special / "-" )
_NICK = re.compile(r"^[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]*$")
_CHANNEL_FORBIDDEN = re.compile(r"[\x00\x07\r\n ,:]")


@dataclass(slots=True)
class Message:
    """One IRC message.

    ``tags`` maps a tag key to its unescaped value (``""`` for a tag without
    a value). ``trailing`` says the last parameter is (or must be) written
    after ``" :"``; it is forced on by :func:`render` whenever the last
    parameter is empty, contains a space or starts with ``:``.
    """

    command: str
    params: list[str] = field(default_factory=list)
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    trailing: bool = False

    @property
    def text(self) -> str:
        """The last parameter, or ``""`` when there is none."""
        return self.params[-1] if self.params else ""


def parse_line(line: str) -> Message:
    """Parse one line (CR LF already removed) into a :class:`Message`.

    Runs of spaces separate parameters (RFC 1459 allows more than one).
    The command comes back upper-cased. Raises ``ProtocolError`` when the
    line has no command or the command is neither letters nor a 3-digit
    numeric.
    """
    rest = line.lstrip(" ")
    if not rest:
        raise ProtocolError("empty IRC line")
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        tags = parse_tags(raw_tags)
        rest = rest.lstrip(" ")
    source: str | None = None
    if rest.startswith(":"):
        source, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    command, _, rest = rest.partition(" ")
    if not command:
        raise ProtocolError(f"IRC line without a command: {line[:64]!r}")
    if not _COMMAND.match(command):
        raise ProtocolError(
            f"not an IRC command: {command[:32]!r}", context={"command": command[:32]}
        )
    params: list[str] = []
    trailing = False
    while True:
        rest = rest.lstrip(" ")
        if not rest:
            break
        if rest.startswith(":"):
            params.append(rest[1:])
            trailing = True
            break
        param, _, rest = rest.partition(" ")
        params.append(param)
    return Message(command.upper(), params, source or None, tags, trailing)


def parse_tags(raw: str) -> dict[str, str]:
    """``a=b;c;+d=e\\sf`` → ``{"a": "b", "c": "", "+d": "e f"}``.
    Later duplicates win, as message-tags says."""
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        if not item:
            continue
        key, _, value = item.partition("=")
        if key:
            tags[key] = unescape_tag_value(value)
    return tags


def unescape_tag_value(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, "")
        out.append(_TAG_UNESCAPES.get(nxt, nxt))
    return "".join(out)


def escape_tag_value(value: str) -> str:
    return "".join(_TAG_ESCAPES.get(ch, ch) for ch in value)


def render_tags(tags: dict[str, str]) -> str:
    """The tag section without ``@``; ``""`` for no tags."""
    return ";".join(f"{k}={escape_tag_value(v)}" if v else k for k, v in tags.items())


def render(message: Message, *, max_body_bytes: int | None = MAX_BODY_BYTES) -> str:
    """Render ``message`` as one line, without CR LF.

    When the part after the tags would exceed ``max_body_bytes`` (UTF-8),
    the last parameter is cut on a character boundary so that it fits (this
    is what servers do when a relayed line grows by the sender's prefix);
    ``None`` disables the cut. Raises ``ValueError`` for a message that no
    line can carry: a parameter with CR, LF or NUL, or a middle parameter
    that is empty, contains a space or starts with ``:``.
    """
    if not _COMMAND.match(message.command):
        raise ValueError(f"not an IRC command: {message.command!r}")
    params = message.params
    for param in params:
        if any(ch in param for ch in "\r\n\0"):
            raise ValueError(f"IRC parameter with CR, LF or NUL: {param[:64]!r}")
    for param in params[:-1]:
        if not param or " " in param or param.startswith(":"):
            raise ValueError(f"middle IRC parameter must be a non-empty word: {param[:64]!r}")
    head = f":{message.source} {message.command}" if message.source else message.command
    if params:
        middle = "".join(f" {p}" for p in params[:-1])
        last = params[-1]
        colon = message.trailing or not last or " " in last or last.startswith(":")
        head = f"{head}{middle} {':' if colon else ''}"
        if max_body_bytes is not None:
            room = max_body_bytes - len(head.encode())
            last = truncate_utf8(last, max(room, 0))
        body = head + last
    else:
        body = head
    if message.tags:
        return f"@{render_tags(message.tags)} {body}"
    return body


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, never mid-character."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode(errors="ignore")


def split_utf8(text: str, max_bytes: int) -> list[str]:
    """Split ``text`` into pieces of at most ``max_bytes`` UTF-8 bytes,
    preferring to break after a space. Never returns an empty list."""
    if max_bytes < 4:
        raise ValueError("max_bytes must leave room for one UTF-8 character")
    pieces: list[str] = []
    while len(text.encode()) > max_bytes:
        cut = truncate_utf8(text, max_bytes)
        space = cut.rfind(" ")
        if space > len(cut) // 2:
            cut = cut[: space + 1]
        pieces.append(cut.rstrip(" ") or cut)
        text = text[len(cut) :]
    if text or not pieces:
        pieces.append(text)
    return pieces


# ------------------------------------------------------------ case mapping

_RFC1459_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ[]\\~", "abcdefghijklmnopqrstuvwxyz{}|^")


def irc_lower(name: str) -> str:
    """rfc1459 case folding: ASCII letters, and ``[]\\~`` ≡ ``{}|^``.
    Nick and channel lookups go through this and nothing else."""
    return name.translate(_RFC1459_LOWER)


def valid_nick(nick: str) -> bool:
    return 0 < len(nick) <= NICKLEN and bool(_NICK.match(nick))


def valid_channel(name: str) -> bool:
    return (
        1 < len(name) <= CHANNELLEN and name.startswith("#") and not _CHANNEL_FORBIDDEN.search(name)
    )


# ------------------------------------------------------------ byte stream


@dataclass(slots=True)
class RawLine:
    """One line cut from the stream. ``overflow`` lines were longer than the
    buffer's limit; ``data`` then holds only their first bytes."""

    data: bytes
    overflow: bool = False


class LineBuffer:
    """Cuts a byte stream into lines at CR, LF or CR LF.

    Empty lines are dropped (so a lone CR, a lone LF and CR LF all end one
    line). A line longer than ``limit`` bytes is reported once, as a
    :class:`RawLine` with ``overflow=True``, and the rest of it is discarded
    up to the next line end — memory stays bounded by ``limit`` whatever a
    peer sends.
    """

    def __init__(self, limit: int = MAX_TAGS_BYTES + MAX_LINE_BYTES) -> None:
        if limit < 1:
            raise ValueError("line limit must be positive")
        self.limit = limit
        self._partial = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[RawLine]:
        out: list[RawLine] = []
        start = 0
        for match in re.finditer(rb"[\r\n]", data):
            self._take(data[start : match.start()], out, end=True)
            start = match.end()
        self._take(data[start:], out, end=False)
        return out

    def _take(self, chunk: bytes, out: list[RawLine], *, end: bool) -> None:
        if self._discarding:
            if end:
                self._discarding = False
            return
        self._partial += chunk
        if len(self._partial) > self.limit:
            out.append(RawLine(bytes(self._partial[: self.limit]), overflow=True))
            self._partial.clear()
            self._discarding = not end
            return
        if end:
            if self._partial:
                out.append(RawLine(bytes(self._partial)))
            self._partial.clear()


__all__ = [
    "CHANNELLEN",
    "MAX_BODY_BYTES",
    "MAX_LINE_BYTES",
    "MAX_TAGS_BYTES",
    "NICKLEN",
    "LineBuffer",
    "Message",
    "RawLine",
    "escape_tag_value",
    "irc_lower",
    "parse_line",
    "parse_tags",
    "render",
    "render_tags",
    "split_utf8",
    "truncate_utf8",
    "unescape_tag_value",
    "valid_channel",
    "valid_nick",
]
