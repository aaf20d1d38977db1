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
        return el("p", "Not run: no iter-NN/01_train stage.", class_="notrun")
    header = ["iteration", "model", "epoch / lr", "threshold", "valid. precision / recall", "valid. ROC-AUC",
              "out-of-source ROC-AUC", "held-out source"]  # fmt: skip
    rows = []
    warnings = []
    for iteration, manifest in manifests:
        extra = manifest.get("extra") or {}
        fit = extra.get("fit") or {}
        chosen = fit.get("chosen") or {}
        threshold = extra.get("threshold") or {}
        metrics = extra.get("metrics") or {}
        source = extra.get("out_of_source") or {}
        tuned = " (tuned: the given settings underfit)" if fit.get("tuned") else ""
        if fit.get("degenerate"):
            warnings.append(f"{iteration}: degenerate model, validation scores barely spread")
        target = threshold.get("target_precision")
        rows.append(
            [
                iteration,
                el("code", extra.get("model_id", "")),
                f"{chosen.get('epoch', '?')} / {chosen.get('lr', '?')}{tuned}",
                f"{fmt_float(threshold.get('threshold'), 4)} (target precision {fmt_float(target, 2)})",
                f"{fmt_float(metrics.get('precision'))} / {fmt_float(metrics.get('recall'))}",
                fmt_float(metrics.get("roc_auc")),
                fmt_float(source.get("roc_auc")),
                f"{source.get('held_out_source') or source.get('note', '')} ({fmt_int(source.get('n_positive'))} texts)",
            ]
        )
    body = join(el("tr", [el("td", cell) for cell in row]) for row in rows)
    table = el("table", el("thead", el("tr", [el("th", h) for h in header])), el("tbody", body))
    note = el(
        "p",
        "Threshold: chosen on the validation split for the target precision, in the middle of the range of cut-offs "
        "that give the most recall at that precision (fastText scores are not calibrated, so 0.5 means nothing). "
        "Out-of-source: a model trained without one whole "
        "positive source, scored on that source against held-out negatives.",
        class_="note",
    )
    return join([note, table, *(el("p", w, class_="bad") for w in warnings)])
