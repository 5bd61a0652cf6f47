"""Benchmarks: planning speed (and, later, result tables of whole suites)."""
