"""curate: math pre-training corpora from Common Crawl, free of benchmark leakage."""

__version__ = "0.1.0"
