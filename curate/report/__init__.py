"""`curate report`: one self-contained HTML page about a run (stages, scores, iterations, domains,
contamination, near-duplicates, export), drawn with inline SVG and safe against hostile crawled text."""

from curate.report.page import build_report, render_report, write_report

__all__ = ["build_report", "render_report", "write_report"]
