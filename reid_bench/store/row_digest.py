"""A results row's digest, so a wrong number cannot pass as a reproduction: ``row_digest`` is
a digest of a row's own content, written into its ``row_digest`` column; a row whose fields no
longer match it was edited by hand (``row_edited``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ..core.hashing import short_hash

DIGEST_COLUMN = "row_digest"


def _canon(v: Any) -> str:
    """A field as text, the same whether it was written (Python values) or read back from the
    CSV (pandas: ints in float columns, bools parsed, blanks as NaN)."""
    if v is None:
        return ""
    try:
        if v != v:  # NaN (float, numpy) and pandas NA alike
            return ""
    except (TypeError, ValueError):
        return ""
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return "true" if v else "false"
    s = str(v)
    if s.strip().lower() in ("true", "false"):
        return s.strip().lower()
    try:
        f = float(s)
    except ValueError:
        return s
    if math.isnan(f):
        return ""
    if math.isinf(f):
        return s.strip().lower()
    return str(int(f)) if f.is_integer() and abs(f) < 2**53 else repr(f)


def row_digest(row: Mapping[str, Any]) -> str:
    """16-hex digest over every non-empty field of ``row`` except ``row_digest`` itself.
    Empty fields are left out, so a column added to the schema later (empty in old rows) does
    not change the digest of the rows written before it; so are false ones, because reading
    turns an empty flag column (``smoke``, ``synthetic``, ``git_dirty``) into False."""
    fields = {str(k): _canon(v) for k, v in row.items() if k != DIGEST_COLUMN}
    fields = {k: v for k, v in sorted(fields.items()) if v not in ("", "false")}
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return short_hash(text)


def row_edited(row: Mapping[str, Any]) -> str:
    """Why ``row`` (a results row as read back) cannot be trusted as written, or "" when its
    digest matches: "no row digest" or "content does not match its row digest"."""
    # The stored digest is text: never read it as a number ("57293887554656e0" is hex).
    raw = row.get(DIGEST_COLUMN)
    stored = raw.strip() if isinstance(raw, str) else ""
    if not stored:
        return "no row digest (written by hand or by a version without digests)"
    if stored != row_digest(row):
        return "content does not match its row digest (edited after it was written)"
    return ""
