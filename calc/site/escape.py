"""HTML-escaping for everything calc writes into a page.

The same result as `html.escape(text, quote=True)`, but a string with nothing to escape
(every number and most labels) is returned as it is after one scan, which is most of
the cost of rendering a table in the browser.
"""

from __future__ import annotations

import html
import re

_SPECIAL = re.compile(r"[&<>\"']")


def escape(text: str) -> str:
    """`text` safe inside HTML element content and quoted attribute values."""
    return html.escape(text) if _SPECIAL.search(text) else text
