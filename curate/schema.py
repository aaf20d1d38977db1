"""THE Arrow schemas of curate. Every column is declared here once; Spark schemas are derived from these.

Never infer a schema from data: an empty partition or a first row full of nulls would change the types.
"""

from __future__ import annotations

import pyarrow as pa

# Set by a step on the rows it rejects; the stage writer moves those rows to `_rejected/`.
DROP_REASON = "drop_reason"
DROP_DETAIL = "drop_detail"
# A `drop_reason` for rows that remark on an input (e.g. a whole-file gzip WARC) without being a record:
# listed in the manifest, never counted as records or drops.
NOTE_REASON = "note"
DROP_FIELDS = [pa.field(DROP_REASON, pa.string()), pa.field(DROP_DETAIL, pa.string())]


def with_drop_fields(schema: pa.Schema) -> pa.Schema:
    for field in DROP_FIELDS:
        if schema.get_field_index(field.name) < 0:
            schema = schema.append(field)
    return schema


def without_drop_fields(schema: pa.Schema) -> pa.Schema:
    for name in (DROP_REASON, DROP_DETAIL):
        index = schema.get_field_index(name)
        if index >= 0:
            schema = schema.remove(index)
    return schema


# Input of ingest: one row per WARC file (Spark distributes files, the reader step explodes records).
WARC_FILES = pa.schema([pa.field("warc_path", pa.string(), nullable=False)])

# One row per WARC record after reading, before extraction.
WARC_RECORDS = pa.schema(
    [
        pa.field("doc_id", pa.string()),
        pa.field("warc_path", pa.string()),
        pa.field("warc_record_offset", pa.int64()),
        pa.field("warc_record_length", pa.int64()),
        pa.field("warc_record_type", pa.string()),
        pa.field("warc_date", pa.timestamp("us", tz="UTC")),
        pa.field("url", pa.string()),
        pa.field("http_status", pa.int32()),
        pa.field("content_type", pa.string()),
        pa.field("http_charset", pa.string()),
        pa.field("payload", pa.binary()),
    ]
)

# The documents every later stage reads. Lineage (warc_*) lets any page be traced to its WARC record.
DOCUMENTS = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),  # stable across runs: hash of record id, file name, offset
        pa.field("url", pa.string()),  # normalised
        pa.field("host", pa.string()),
        pa.field("registered_domain", pa.string()),
        pa.field("warc_path", pa.string()),
        pa.field("warc_record_offset", pa.int64()),
        pa.field("warc_record_length", pa.int64()),
        pa.field("warc_date", pa.timestamp("us", tz="UTC")),
        pa.field("content_type", pa.string()),
        pa.field("charset", pa.string()),
        pa.field("language", pa.string()),
        pa.field("language_score", pa.float32()),
        pa.field("text", pa.string()),
        pa.field("n_chars", pa.int64()),
        pa.field("has_math_markup", pa.bool_()),
    ]
)

# What `_rejected/` holds: enough to find the record again and know why it went.
REJECTED = pa.schema(
    [
        pa.field("doc_id", pa.string()),
        pa.field("url", pa.string()),
        pa.field("warc_path", pa.string()),
        pa.field("warc_record_offset", pa.int64()),
        pa.field(DROP_REASON, pa.string(), nullable=False),
        pa.field(DROP_DETAIL, pa.string()),
    ]
)

# Near-dedup (issue 3).
SIGNATURES = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("minhash", pa.list_(pa.int64())),  # uint32 values; Spark has no unsigned types
        pa.field("n_shingles", pa.int32()),
    ]
)
DUPLICATES = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("cluster_id", pa.string()),
        pa.field("kept_doc_id", pa.string()),
        pa.field("jaccard", pa.float32()),
    ]
)

# Classifier scores (issue 4): a scorer only adds these columns, it never drops rows.
SCORE_FIELDS = [pa.field("math_score", pa.float32()), pa.field("model_id", pa.string())]
# Tokens of a document's text, counted by the tokenizer the select stage's budget names.
N_TOKENS = pa.field("n_tokens", pa.int64())
CUM_TOKENS = pa.field("cum_tokens", pa.int64())
# A select stage's `_ranking/`: the ranking a token budget cut, by score then doc_id, with running totals.
RANKING = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("math_score", pa.float32()),
        N_TOKENS,
        CUM_TOKENS,
    ]
)

# Domain statistics (issue 4/7).
DOMAIN_STATS = pa.schema(
    [
        pa.field("domain", pa.string(), nullable=False),
        pa.field("pages_seen", pa.int64()),
        pa.field("pages_collected", pa.int64()),
        pa.field("collected_fraction", pa.float64()),
        pa.field("flagged", pa.bool_()),
    ]
)
PREFIX_STATS = pa.schema(
    [
        pa.field("domain", pa.string(), nullable=False),
        pa.field("prefix", pa.string(), nullable=False),  # e.g. "mathoverflow.net/questions"
        pa.field("pages_seen", pa.int64()),
        pa.field("pages_collected", pa.int64()),
        pa.field("collected_fraction", pa.float64()),
        pa.field("sample_urls", pa.list_(pa.string())),
        # Parallel to sample_urls: the start of each sample's text, shown by `curate annotate review`.
        pa.field("sample_snippets", pa.list_(pa.string())),
    ]
)

# Pages shown on a domain's review screen: for each flagged domain a few collected and a few uncollected pages.
DOMAIN_SAMPLES = pa.schema(
    [
        pa.field("domain", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("collected", pa.bool_()),
        pa.field("title", pa.string()),  # documents keep no HTML title: the first line of the main text
        pa.field("snippet", pa.string()),
    ]
)
# The uncollected pages of every site (registered domain) holding a flagged domain: what the review counts to say
# how many pages a label would add to the next seed.
UNCOLLECTED_PAGES = pa.schema(
    [
        pa.field("registered_domain", pa.string(), nullable=False),
        pa.field("url", pa.string()),
    ]
)

# Human annotations (issue 5): one JSONL record per line under annotations/.
ANNOTATIONS = pa.schema(
    [
        pa.field("pattern", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),  # "math" | "not-math" | "removed" (tombstone)
        pa.field("annotator", pa.string()),
        pa.field("time", pa.string()),
        pa.field("iteration", pa.int32()),
        pa.field("note", pa.string()),
    ]
)

# One benchmark n-gram match inside a document, as the decontamination step reports it per row.
HIT_TYPE = pa.struct(
    [
        pa.field("benchmark", pa.string()),
        pa.field("item_id", pa.string()),
        pa.field("field", pa.string()),
        pa.field("ngram", pa.string()),
        pa.field("offset", pa.int64()),
        pa.field("length", pa.int64()),
        pa.field("matched_tokens", pa.int32()),
    ]
)
# Decontamination hits (issue 6): every removal is explained.
CONTAMINATION = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("benchmark", pa.string()),
        pa.field("item_id", pa.string()),
        pa.field("field", pa.string()),  # question | answer
        pa.field("ngram", pa.string()),  # the document's text of the first matching n-gram
        pa.field("offset", pa.int64()),  # character offset of the match in the document text
        pa.field("length", pa.int64()),  # characters of the whole matched passage from `offset`
        pa.field("matched_tokens", pa.int32()),  # its length in tokens: 10 is one n-gram, 200 a whole solution
    ]
)


def arrow_schema_of(df) -> pa.Schema:  # type: ignore[no-untyped-def]
    """The Arrow schema of a Spark DataFrame (timestamps in UTC, as every curate session runs)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(df.schema, timezone="UTC")


def spark_schema(schema: pa.Schema):  # type: ignore[no-untyped-def]
    """The Spark StructType for an Arrow schema (imports pyspark lazily: no JVM needed to import curate)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


# ======================================================================================================
# EXPORT (issue 6/7): the released corpus, `data/part-NNNNN-of-MMMMM.parquet` + `manifest.json`.
#
# A public contract, read by people who never see this code. Columns are only ever added at the end;
# renaming, retyping or reordering one bumps EXPORT_FORMAT_VERSION. Every column is optional at the
# Parquet level because Spark writes them so; doc_id, url and text are never null.
# Rows are ordered by doc_id ascending, within and across shards (doc_id is a hash, so every shard is
# an unbiased sample of the corpus, and a doc_id is found by the shards' first/last doc_id).
# ======================================================================================================
EXPORT_FORMAT_VERSION = 1

# Values of `decontamination`. Contaminated documents are removed by decontamination, so an export of
# the final stage is all "clean"; exporting an earlier stage (`--stage`) can show the other two.
DECONTAM_CLEAN = "clean"
DECONTAM_CONTAMINATED = "contaminated"
DECONTAM_UNCHECKED = "unchecked"


def _described(name: str, type_: pa.DataType, description: str) -> pa.Field:
    return pa.field(name, type_, metadata={"description": description})


EXPORT = pa.schema(
    [
        _described("doc_id", pa.string(), "Stable document id (hash of WARC record id, file and offset)."),
        _described("text", pa.string(), "Extracted text, math kept as LaTeX."),
        _described("url", pa.string(), "Normalised URL of the page."),
        _described("domain", pa.string(), "Registered domain (public suffix list), else host."),
        _described("language", pa.string(), "Language code from language identification."),
        _described("n_chars", pa.int64(), "Characters of text."),
        _described("tokens", pa.int64(), "Tokens of text; manifest.json `token_counter` names the tokenizer."),
        _described("math_score", pa.float32(), "Math classifier score of the model in model_id."),
        _described("model_id", pa.string(), "Classifier that produced math_score."),
        _described("iteration", pa.int32(), "First iteration whose selection collected the page; null: none."),
        _described("dedup_cluster_id", pa.string(), "Near-duplicate cluster this page was kept for; null: none."),
        _described("decontamination", pa.string(), "clean | contaminated | unchecked (benchmark n-gram check)."),
        _described("warc_path", pa.string(), "WARC file holding the page's response record."),
        _described("warc_record_offset", pa.int64(), "Byte offset of the record in warc_path."),
        _described("warc_record_length", pa.int64(), "Byte length of the (compressed) record."),
        _described("warc_date", pa.timestamp("us", tz="UTC"), "Crawl time of the record."),
    ]
)
