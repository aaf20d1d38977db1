"""The report's classifier section: per iteration, how the model was fitted, the threshold it chose, and
its validation and out-of-source metrics (read from each `iter-NN/01_train` manifest)."""

from __future__ import annotations

import dataclasses
from typing import Any

from curate.io import fs
from curate.manifest import read_manifest
from curate.report.html import Markup, el, fmt_float, fmt_int, join
from curate.stages import registry


def _train_manifests(run_dir: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for k in range(1, 100):
        manifest = read_manifest(fs.join(run_dir, *registry.TRAIN.name(k).split("/")))
        if manifest is None:
            break
        found.append((registry.iteration_dir(k), dataclasses.asdict(manifest)))
    return found


def classifier_section(run_dir: str) -> Markup:
    manifests = _train_manifests(run_dir)
    if not manifests:
        return el("p", f"Not run: no iter-NN/{registry.TRAIN.directory} stage.", class_="notrun")
    header = ["iteration", "model", "wordNgrams / epoch / lr", "threshold", "valid. precision / recall",
              "valid. ROC-AUC", "out-of-source ROC-AUC", "out-of-source precision / recall", "held-out sources"]  # fmt: skip
    rows = []
    warnings = []
    for iteration, manifest in manifests:
        extra = manifest.get("extra") or {}
        fit = extra.get("fit") or {}
        chosen = fit.get("chosen") or {}
        threshold = extra.get("threshold") or {}
        metrics = extra.get("metrics") or {}
        source = extra.get("out_of_source") or {}
        how = {"held_out_sources": "chosen on held-out sources", "validation": "chosen on validation"}
        tuned = f" ({how.get(fit.get('selected_on', 'validation'), 'tuned')})" if fit.get("tuned") else ""
        if fit.get("degenerate"):
            warnings.append(f"{iteration}: degenerate model, validation scores barely spread")
        target = threshold.get("target_precision")
        split = "held-out sources" if threshold.get("split") == "held_out_sources" else "validation"
        on_held_out = threshold.get("split") == "held_out_sources"
        names = ", ".join(str(s).rstrip("/").rsplit("/", 1)[-1] for s in source.get("held_out_sources") or [])
        rows.append(
            [
                iteration,
                el("code", extra.get("model_id", "")),
                f"{chosen.get('word_ngrams', '?')} / {chosen.get('epoch', '?')} / {chosen.get('lr', '?')}{tuned}",
                f"{fmt_float(threshold.get('threshold'), 4)} (target precision {fmt_float(target, 2)} on {split})",
                f"{fmt_float(metrics.get('precision'))} / {fmt_float(metrics.get('recall'))}",
                fmt_float(metrics.get("roc_auc")),
                fmt_float(source.get("roc_auc")),
                f"{fmt_float(threshold.get('precision'))} / {fmt_float(threshold.get('recall'))}"
                if on_held_out
                else "",
                f"{names or source.get('note', '')} ({fmt_int(source.get('n_positive'))} texts)",
            ]
        )
    body = join(el("tr", [el("td", cell) for cell in row]) for row in rows)
    table = el("table", el("thead", el("tr", [el("th", h) for h in header])), el("tbody", body))
    note = el(
        "p",
        "Out-of-source: each held-out positive source scored by a model trained without it, against held-out "
        "negatives; the fastText settings are the ones that rank those best. Threshold: chosen on those "
        "out-of-source scores (on the validation split when no source can be held out) for the target precision, "
        "in the middle of the range of cut-offs that give the most recall at that precision (fastText scores are "
        "not calibrated, so 0.5 means nothing).",
        class_="note",
    )
    return join([note, table, *(el("p", w, class_="bad") for w in warnings)])
