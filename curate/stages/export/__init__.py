"""Export: the final corpus as size-targeted Parquet shards plus `manifest.json`, committed atomically.

The plan (Spark; under the local runner a local[*] session, as for dedup: a global sort is a shuffle):

    source stage --left joins--> EXPORT rows: iteration first selected, near-dup cluster, decontamination
    one scan, cached: (doc_id, estimated raw bytes, tokens) + a doc_id-hash sample of whole rows
    (doc_id, bytes) --range partition, sort--> per-partition totals --> global offsets
        --> cumulative bytes per row --> shard boundaries (the first doc_id of each shard)
    the sample written by the shard writer --> compressed bytes per estimated raw byte
    EXPORT rows --shard of doc_id (JVM expression)--> hash partition by shard, sort by doc_id
        --> Spark writes one file per shard --> renamed data/part-NNNNN-of-MMMMM.parquet
    per shard: size, sha256, footer rows (executors); doc_id digest (driver) --> manifest.json last
    `<out>.export-<id>.tmp` (new, this export's own) renamed to `<out>`: readers never see a half-written export

To `s3://` or `gs://` (pyarrow.fs, as for inputs): the same export is built in `<run>/_export-<id>.tmp`, then
uploaded shard by shard, each sha256 checked by reading the upload back, and `manifest.json` written last;
an earlier manifest is removed before the first upload, so a failed export leaves none.

Layout: `<out>/manifest.json` and `<out>/data/part-NNNNN-of-MMMMM.parquet` (read `<out>/data` whole with
Spark, pyarrow, DuckDB or HF datasets; the manifest lists every shard with its sha256).

Why Spark writes the shards directly (no pyarrow rewrite): partitioning by shard id already yields exactly
one file per shard, so the data is compressed once; a rewrite would read and recompress every byte again
on one machine. Spark's writer sets the row groups (`parquet.block.size`, `parquet.block.row.count.limit`).

Shard sizes are targeted, not exact: a row's Parquet size is its raw bytes times the compression ratio of
the sample, so shards land near the target (measured: within 0.5% of 100 MiB) and the last one holds the
remainder. Rows are ordered by doc_id, so names, contents and checksums depend only on input and config.

One module per phase:

    config.py   ExportConfig and the names an export writes
    lineage.py  which stages of the run feed the export
    frame.py    the export rows (source documents joined with their lineage)
    shards.py   shard boundaries, Spark's shard files, checksums
    publish.py  scratch, atomic rename or checked upload, reading an export's manifest back
    stage.py    `run_export`: the phases in order
"""

from curate.stages.export.config import MANIFEST_FILE, ExportConfig
from curate.stages.export.publish import publish_to_object_store, read_export_manifest
from curate.stages.export.stage import run_export

__all__ = ["MANIFEST_FILE", "ExportConfig", "publish_to_object_store", "read_export_manifest", "run_export"]
