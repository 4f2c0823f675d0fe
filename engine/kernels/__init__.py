"""numba kernels: private `_`-prefixed functions over arrays and scalars.

`engine.decide` calls them through its checked wrappers; `engine.kernels.readout`, which owns how a
stored state reads at a moment (friction decay and level, the counter ring), serves the kernels
and, through its annotated wrappers, `engine.decide`, `engine.view` and `engine.merge`. Kernels
never raise or allocate Python objects, and they branch only on the codes named in
`engine.kernels.codes`.
"""
