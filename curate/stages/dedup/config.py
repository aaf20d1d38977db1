"""Near-dedup settings: the `dedup:` section of a recipe and `curate dedup --set`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from curate.errors import ConfigError
from curate.steps.minhash import MinHashParams

if TYPE_CHECKING:
    pass


# Keep-rule columns that may be absent: math_score exists only once the classifier stage has run.
OPTIONAL_KEEP_COLUMNS = frozenset({"math_score"})


VERIFY_MODES = ("exact", "signature", "none")


@dataclass(frozen=True)
class DedupConfig:
    """Near-dedup settings.

    verify: how a candidate pair (and a member's likeness to its kept document) is measured against
        `minhash.threshold`. "exact": the Jaccard of the two shingle sets, computed from the texts (a pair
        with a document of an earlier corpus, whose text is not stored, falls back to the signature);
        "signature": the fraction of equal signature values (datasketch's `MinHash.jaccard`, about +-0.04
        at 0.7 with 128 permutations); "none": every LSH candidate is an edge (LSH also pairs documents far
        below the threshold). "exact" costs a join of the near-threshold pairs with their texts: on the
        6,720-document benchmark, 3 s more on a warm 19 s stage; it changed 2 % of the removals (recall
        0.974 vs 0.969) and raised the lowest Jaccard of any two merged documents from 0.53 to 0.56.
    exact_margin: "exact" computes the exact Jaccard only where the signature estimate lies within this of the
        threshold, where the estimate's error (sd about 0.04 at 0.7 with 128 permutations) could flip the
        decision; a pair further away keeps its estimate. 1.0 computes it for every pair.
    keep: the order that picks the document a cluster keeps: "column asc|desc" items, then doc_id
        ascending. `text_length` is the text's length in characters; a missing `math_score` is skipped.
    max_bucket_size: a bucket with more documents than this (boilerplate pages sharing a whole band) is
        linked as a star to its smallest doc_id instead of as all pairs, so one bucket cannot emit
        millions of pairs.
    max_rounds: the cap on large-star/small-star rounds of one connected-components run.
    max_passes: the cap on star passes (see `assign_stars`); members still unassigned after it are kept.
    min_jaccard_to_kept: the signature agreement with its cluster's kept document that a removed document
        needs (default: `minhash.threshold`). Lower finds more of each family, at the price of looser pairs.
    """

    minhash: MinHashParams = field(default_factory=MinHashParams)
    verify: str = "exact"
    keep: tuple[str, ...] = ("math_score desc", "text_length desc")
    max_bucket_size: int = 64
    max_rounds: int = 40
    max_passes: int = 4
    min_jaccard_to_kept: float | None = None
    exact_margin: float = 0.15

    def __post_init__(self) -> None:
        if self.verify not in VERIFY_MODES:
            raise ConfigError(f"dedup.verify must be one of {', '.join(VERIFY_MODES)}, got {self.verify!r}")
        for name, least in (("max_passes", 1), ("max_bucket_size", 2), ("max_rounds", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"dedup.{name} must be an integer >= {least}, got {value!r}")
        if not isinstance(self.exact_margin, int | float) or not 0 <= self.exact_margin <= 1:
            raise ConfigError(f"dedup.exact_margin must be a number in [0, 1], got {self.exact_margin!r}")
        bound = self.min_jaccard_to_kept
        if bound is not None and (not isinstance(bound, int | float) or isinstance(bound, bool) or not 0 < bound <= 1):
            raise ConfigError(f"dedup.min_jaccard_to_kept must be a number in (0, 1], got {bound!r}")
        for item in self.keep:
            parts = item.split()
            if len(parts) not in (1, 2) or (len(parts) == 2 and parts[1] not in ("asc", "desc")):
                raise ConfigError(f"dedup.keep item {item!r}: expected 'column', 'column asc' or 'column desc'")

    @property
    def edge_threshold(self) -> float:
        """The Jaccard a candidate pair needs to be an edge of the graph."""
        return 0.0 if self.verify == "none" else self.minhash.threshold

    @property
    def kept_threshold(self) -> float:
        """The Jaccard a member needs with its cluster's kept document to be removed."""
        if self.verify == "none":
            return 0.0
        return self.minhash.threshold if self.min_jaccard_to_kept is None else self.min_jaccard_to_kept

    def keep_keys(self, columns: list[str]) -> list[tuple[str, bool]]:
        """The keep rule as (column, descending) over `columns` (the attributes available), doc_id last."""
        keys: list[tuple[str, bool]] = []
        for item in self.keep:
            name, *direction = item.split()
            if name not in columns:
                if name in OPTIONAL_KEEP_COLUMNS:
                    continue
                raise ConfigError(f"dedup.keep names column {name!r}, which the documents do not have")
            keys.append((name, direction != ["asc"]))
        return [*keys, ("doc_id", False)]

    def to_dict(self) -> dict[str, Any]:
        payload = asdict(self)
        payload["keep"] = list(self.keep)
        payload["minhash"]["bands"], payload["minhash"]["rows"] = self.minhash.bands_rows
        return payload


def dedup_config(values: dict[str, Any] | None, origin: str = "configuration") -> DedupConfig:
    """A DedupConfig from a `dedup:` section (YAML / `--set`), naming any unknown or mistyped field."""
    from curate.config import section

    values = dict(values or {})
    minhash = section({"minhash": values.pop("minhash", None) or {}}, "minhash", MinHashParams, f"{origin}: dedup")
    if isinstance(values.get("keep"), str):
        values["keep"] = [values["keep"]]
    if "keep" in values:
        values["keep"] = tuple(values["keep"])
    base = section({"dedup": values}, "dedup", DedupConfig, origin)
    return DedupConfig(
        minhash=minhash,
        verify=base.verify,
        keep=base.keep,
        max_bucket_size=base.max_bucket_size,
        max_rounds=base.max_rounds,
        max_passes=base.max_passes,
        min_jaccard_to_kept=base.min_jaccard_to_kept,
        exact_margin=base.exact_margin,
    )
