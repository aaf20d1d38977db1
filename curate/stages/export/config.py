"""Export settings and the names of what an export writes."""

from __future__ import annotations

from dataclasses import dataclass

from curate.classify.tokens import DEEPSEEK_BPE, TOKENIZERS
from curate.config import is_number
from curate.errors import ConfigError

MiB = 2**20
EXPORT_STEP = "parquet_export_v1"
EXPORT_FORMAT = "curate-export"
MANIFEST_FILE = "manifest.json"


# Shards live in their own directory: Spark, pyarrow and HF datasets all fail on a directory of Parquet
# that also holds manifest.json, and read `<out>/data` as it is.
DATA_DIR = "data"
SHARD_COLUMN = "_shard"
SAMPLE_BYTES = 32 * MiB
WORK_DIR = "_work"
HASH_CHUNK = 8 * MiB
ORDER = "doc_id ascending, within and across shards"


@dataclass(frozen=True)
class ExportConfig:
    """Shard and row-group sizes. Row groups close at whichever limit comes first (Parquet's block size
    counts buffered, compressed bytes), so a scan reads ~128 MB at a time and a small document corpus
    does not get million-row groups."""

    target_shard_bytes: int = 512 * MiB
    row_group_bytes: int = 128 * MiB
    row_group_rows: int = 65_536
    compression: str = "zstd"
    # Counts tokens only if the source has no n_tokens column (scoring adds one), with the tokenizer the
    # selection's budget is counted in.
    tokenizer: str = DEEPSEEK_BPE

    def __post_init__(self) -> None:
        if self.target_shard_bytes < 64 * 1024:
            raise ConfigError(f"target shard size {self.target_shard_bytes} B: must be at least 64 KiB")
        if self.row_group_bytes < MiB or self.row_group_rows < 1:
            raise ConfigError("row groups must be at least 1 MB and 1 row")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"export: unknown tokenizer {self.tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")

    @classmethod
    def with_shard_mb(cls, target_shard_mb: float) -> ExportConfig:
        """The settings for a target shard size in MB, the unit of the CLI and the run configuration."""
        return cls(target_shard_bytes=int(target_shard_mb * MiB))


@dataclass
class ExportSection:
    """The run configuration's `export:` section: whether `curate run` exports, where, and the shard size."""

    enabled: bool = True
    out: str | None = None  # default: <run>/export
    target_shard_mb: float = ExportConfig.target_shard_bytes / MiB

    def __post_init__(self) -> None:
        if not is_number(self.target_shard_mb) or self.target_shard_mb <= 0:
            raise ConfigError(f"export.target_shard_mb must be a number > 0, got {self.target_shard_mb!r}")

    def stage_config(self) -> ExportConfig:
        return ExportConfig.with_shard_mb(self.target_shard_mb)


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"
