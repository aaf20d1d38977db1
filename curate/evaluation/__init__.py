"""Measurements of curate's steps against ground truth (extraction fidelity, dedup quality)."""
