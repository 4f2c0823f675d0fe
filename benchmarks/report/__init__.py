"""RESULTS.md: the targets, every figure beside its ceiling, and the one renderer.

`run_figures` types what each run returns; `sections` lays each section out as a table of
`table.Figure`s (name, measured, ceiling, target, unit, note); `targets` judges them; `markdown`
writes them all. Pure but for `machine` (what the figures were measured on): it measures nothing.
"""
