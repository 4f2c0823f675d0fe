"""The pure core of journeyman: rules, compiler, kernels, customer state and `decide`.

Nothing here does I/O: files are read by the caller and passed in as text.
"""
