"""RESULTS.md: the targets, every figure beside its ceiling, and their Markdown.

Pure but for `machine` (what the figures were measured on): it reads the figures the runs
returned and writes Markdown; it measures nothing.
"""
