"""numba kernels: private `_`-prefixed functions over arrays and scalars.

Only `engine.decide` calls them, through its checked wrappers; they never raise or allocate Python
objects, and they branch only on the codes named in `engine.kernels.codes`.
"""
