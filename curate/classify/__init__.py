"""The fastText math classifier: preprocessing, training, scoring helpers and score-based selection.

Heavy imports (fasttext, pyspark, tokenizers) happen inside functions, so importing this package is cheap.
"""
