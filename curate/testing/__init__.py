"""Builders of test inputs that follow curate's formats (used by the test suite, importable without a JVM)."""
