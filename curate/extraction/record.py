"""One WARC record's payload to main text with its math, or a named drop: the unit the extraction guard runs.

Kept free of pyarrow, the WARC reader and Spark, so the guard's child process, which imports only this,
starts in a fraction of the time (it starts again after every record that crashes it).
"""

from __future__ import annotations

from curate.errors import describe_exception
from curate.extraction.decode import HTML_TYPES, DecodeFailed, NotHtml, decode_html, sniff_html
from curate.extraction.math_html import TooDeep, TooManyElements, extract_main_text, utf8_tag_opens

# (text, charset, has_math_markup, drop_reason, drop_detail)
Outcome = tuple[str | None, str | None, bool | None, str | None, str | None]


def extract_record(
    payload: bytes | None,
    http_charset: str | None,
    content_type: str | None,
    min_chars: int,
    tag_opens: int | None = None,
) -> Outcome:
    """One record's extraction; the same function runs in-process and in the guarded child.

    `tag_opens` is the number of `<` bytes in `payload`, from a caller that counts it more cheaply than this
    process can (`utf8_tag_opens`); None counts them here.
    """
    charset = None
    try:
        sniff_html(payload or b"", declared_html=(content_type or "").startswith(HTML_TYPES))
        html, charset = decode_html(payload or b"", http_charset)
        if charset != "utf-8":
            tag_opens = None  # counted in the decoded text instead
        elif tag_opens is None:
            tag_opens = utf8_tag_opens(payload or b"")
        extracted = extract_main_text(html, tag_opens=tag_opens)
    except NotHtml as exc:
        return None, charset, None, "non_html", str(exc)
    except DecodeFailed as exc:
        return None, charset, None, "decode_error", str(exc)
    except TooDeep as exc:
        return None, charset, None, "too_deep", str(exc)
    except TooManyElements as exc:
        return None, charset, None, "too_many_elements", str(exc)
    except MemoryError:
        raise  # the process's failure, not the page's: under the guard it becomes `extract_crash`
    except Exception as exc:  # one page's failure is that page's drop, never the job's end
        return None, charset, None, "extract_error", describe_exception(exc)
    text = extracted.text
    if len(text.strip()) < min_chars:
        return None, charset, extracted.has_math_markup, "empty_text", f"{len(text.strip())} chars of main text"
    return text, charset, extracted.has_math_markup, None, None
