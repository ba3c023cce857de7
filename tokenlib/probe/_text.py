"""Escaping for server-provided text where it lands: terminal, XML (JUnit) and HTML.

A probed server controls its status line, ``WWW-Authenticate``, ``DPoP-Nonce`` and error
body; a hostile one can put terminal control sequences there (retitle the window, fake a
"passed", write the clipboard with OSC 52) or characters XML 1.0 cannot carry.
"""

from __future__ import annotations

import html
import re
from typing import Final

__all__ = ["html_safe", "terminal_safe", "xml_safe"]

# C0 controls except nothing (tab and newline are escaped too: one value, one line), DEL,
# C1 controls, and the bidirectional overrides/isolates that reorder what a reader sees.
_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# XML 1.0 §2.2 Char, minus the discouraged C1 range (escaped visibly instead).
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MAX_SHOWN: Final = 500


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(value: object, *, limit: int = MAX_SHOWN) -> str:
    """``value`` as one printable line: control and bidi characters as ``\\xNN`` /
    ``\\uNNNN``, cut to ``limit`` characters (with ``…``)."""
    text = _UNSAFE.sub(_escape, str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def xml_safe(value: object, *, limit: int = 4000) -> str:
    """``value`` with characters XML 1.0 cannot hold (and controls) made visible; the XML
    writer escapes ``<``, ``&`` and quotes."""
    text = _UNSAFE.sub(_escape, str(value))
    text = _NOT_XML.sub(_escape, text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def html_safe(value: object, *, limit: int = 2000) -> str:
    """``value`` escaped for HTML text and attribute values, controls made visible."""
    return html.escape(xml_safe(value, limit=limit), quote=True)
