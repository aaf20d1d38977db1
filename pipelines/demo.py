"""`make demo`: the collection loop on real data, and the story it tells.

The shared sample crawls hold almost no math, so the real math web pages of `html/` (llm-webkit math pages
and ccmath, with their real URLs) are wrapped into a WARC under the run directory at run time and crawled
with them. The run does two iterations; the labels between them are the committed files under
`annotations/demo/`. Afterwards this prints what happened: how the scores spread, which domains were
flagged, what the annotations added to the seed, and how much of iteration 2 iteration 1 had collected.

    python pipelines/demo.py --out runs/demo --config pipelines/demo.yaml --input 'crawl/*.warc.gz' ...
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

MATH_WARC = "_demo_input/real-math-pages.warc.gz"


def write_math_warc(shared_data: Path, run_dir: Path) -> Path:
    # The WARC writer is test support (tests/support/warcs.py), not product: the demo runs from a checkout.
    tests_dir = str(Path(__file__).resolve().parents[1] / "tests")
    if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
    from support.warcs import real_pages, write_warc

    pages = [p for p in real_pages(shared_data) if p.source.name.startswith("math_") or "ccmath" in str(p.source)]
    path = run_dir / MATH_WARC
    path.parent.mkdir(parents=True, exist_ok=True)
    write_warc(pages, path)
    print(f"wrapped {len(pages)} real math pages into {path}")
    return path


def _scores(stage: Path) -> np.ndarray:
    files = sorted(stage.glob("*.parquet"))
    return np.concatenate([pq.read_table(f, columns=["math_score"]).column(0).to_numpy() for f in files])


def _selected_by_origin(it: Path) -> tuple[int, int, int, int]:
    """(math pages selected, math pages crawled, other pages selected, other pages crawled): the wrapped math
    pages are known by their WARC, so the story can say what the threshold kept on each side."""
    scored = pq.read_table(sorted((it / "02_math_score").glob("*.parquet")), columns=["doc_id", "warc_path"])
    kept = set(
        pq.read_table(sorted((it / "03_math_select").glob("*.parquet")), columns=["doc_id"]).column(0).to_pylist()
    )
    math = [str(path).endswith(MATH_WARC) for path in scored.column("warc_path").to_pylist()]
    chosen = [doc_id in kept for doc_id in scored.column("doc_id").to_pylist()]
    math_kept = sum(m and c for m, c in zip(math, chosen, strict=True))
    other_kept = sum(c and not m for m, c in zip(math, chosen, strict=True))
    return math_kept, sum(math), other_kept, len(math) - sum(math)


def _manifest(stage: Path) -> dict:
    return json.loads((stage / "_manifest.json").read_text())


def tell_story(run_dir: Path) -> None:
    run = json.loads((run_dir / "run.json").read_text())
    print(f"\n=== the collection loop ({run['status']}) ===")
    for result in run["iteration_results"]:
        k = result["iteration"]
        it = run_dir / f"iter-{k:02d}"
        if not (it / "02_math_score").exists():
            continue
        train = _manifest(it / "01_train")["extra"]
        scores = _scores(it / "02_math_score")
        threshold = train["threshold"]
        chosen = train["fit"]["chosen"]
        source = train["out_of_source"]
        settings = f"wordNgrams {chosen.get('word_ngrams', '?')}, epoch {chosen['epoch']}, lr {chosen['lr']}"
        how = "chosen on held-out sources" if train["fit"].get("selected_on") == "held_out_sources" else "as given"
        print(f"iteration {k}: model {result['model_id']} ({settings}; {how})")
        if source.get("roc_auc") is not None:
            names = ", ".join(Path(s).name for s in source["held_out_sources"])
            print(
                f"  out-of-source ROC-AUC {source['roc_auc']:.3f} (each of {names} scored by a model trained without it)"
            )
        low, mid, high = np.percentile(scores, [5, 50, 95])
        print(f"  scores of {scores.size} pages spread: 5% {low:.3f}, median {mid:.3f}, 95% {high:.3f}")
        split = "held-out-source" if threshold.get("split") == "held_out_sources" else "validation"
        print(
            f"  threshold {threshold['threshold']:.4f} ({split} precision {threshold['precision']:.3f}, recall "
            f"{threshold['recall']:.3f} for a target precision of {threshold['target_precision']}): "
            f"{result['selected']} of {scores.size} pages selected"
        )
        math_kept, math_seen, other_kept, other_seen = _selected_by_origin(it)
        print(
            f"    of the real math pages wrapped in: {math_kept} of {math_seen}; of the sample crawl's other pages: "
            f"{other_kept} of {other_seen}"
        )
        seen = _manifest(it / "04_domains").get("rows_in", "?")
        print(f"  domains flagged: {result['flagged_domains']} of {seen}")
        flagged = it / "04_domains"
        table = pq.read_table(sorted(flagged.glob("*.parquet"))).to_pylist()
        shown = [r for r in table if r.get("flagged")][:8]
        for row in shown:
            print(f"    {row.get('domain')}: {row.get('pages_collected')} of {row.get('pages_seen')} pages collected")
        if result.get("seed_added") is not None:
            print(f"  annotations applied: {result['seed_added']} uncollected pages under math patterns join the seed")
        if result.get("overlap_with_previous") is not None:
            print(
                f"  overlap: {result['overlap_with_previous']:.1%} of iteration {k}'s collection was collected "
                f"in iteration {k - 1} (the loop stops at {run['config']['loop']['stop_overlap']:.0%})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--config", default="pipelines/demo.yaml")
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--input", action="append", default=[])
    parser.add_argument("args", nargs="*", help="more `curate run` arguments")
    options = parser.parse_args()
    warc = write_math_warc(options.shared, options.out)
    command = [str(Path(sys.executable).with_name("curate")), "run", "--out", str(options.out)]
    command += ["--config", options.config, "--input", str(warc)]
    for pattern in options.input:
        command += ["--input", pattern]
    code = subprocess.call(command + options.args)
    if code != 0:
        sys.exit(code)
    tell_story(options.out)


if __name__ == "__main__":
    main()
