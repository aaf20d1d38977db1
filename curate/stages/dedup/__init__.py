"""Near-duplicate removal on Spark: MinHash signatures, LSH banding, verified pairs, connected components.

The distributed plan (each arrow is a shuffle); up to the bounds of the `*_on_driver` modules, a small corpus's
banding, exact verification and star passes run on the driver instead, with the same result:

    documents --mapInArrow(MinHashStep)--> signatures (written once, read back: the expensive part)
    signatures --explode bands--> (band, band hash, doc_id) --group--> buckets --> candidate pairs
    candidate pairs --join signatures--> estimated Jaccard >= threshold --> edges
    edges --large-star / small-star rounds--> component = smallest doc_id of the component
    components --keep rule--> kept document; members whose signature agrees with it at the threshold are
        removed, the rest are clustered again (a chain A~B~C never removes C for A)
    --> DUPLICATES rows (doc_id, cluster_id, kept_doc_id, jaccard)
    documents --left join DUPLICATES--> drop_reason "near_duplicate" on every removed document

Determinism: buckets, pairs and components are sets and every choice is a minimum (smallest doc_id,
keep rule ending on doc_id), so the output does not depend on partitioning or task order.

Incremental (cross-dump) mode: the signatures of an earlier run's kept documents (its `_signatures/`)
join the banding. Pairs between two earlier documents are not considered, earlier documents are never
removed, and a new document in a component that holds earlier documents is removed in favour of the
smallest earlier doc_id. Earlier signatures are read, never recomputed.

One module per phase:

    config.py      DedupConfig: the `dedup:` section
    signatures.py  MinHash signatures (and those of earlier crawls)
    candidates.py  LSH banding, candidate pairs, estimated / exact Jaccard
    candidates_on_driver.py  the same banding and estimate for a small corpus, on the driver
    exact_on_driver.py       the exact Jaccard against candidates' texts fetched to the driver
    components.py  connected components (large-star / small-star, or on the driver)
    keep.py        the kept document per cluster, removals, drop reasons
    keep_on_driver.py        the star passes of a small graph, on the driver
    stage.py       the phases together (`deduplicate`), and the stage `run_near_dedup`
"""

from curate.stages.dedup.config import DedupConfig, dedup_config
from curate.stages.dedup.stage import deduplicate, run_near_dedup

__all__ = ["DedupConfig", "dedup_config", "deduplicate", "run_near_dedup"]
