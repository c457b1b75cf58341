"""``jit`` for tests that compare two differently built programs bit for bit (or to float
rounding over many chaotic steps).

``make test`` compiles with XLA:CPU's older elemental emitters instead of its fusion emitters,
which halves compile time (see the Makefile). Two programs that compute the same thing in a
different structure (a chunked run and an unchunked one, the bridge's pieces and the gymnax
update, a function and its previous implementation) give the same bits with the fusion
emitters, which every run outside the fast test suite uses, but not always with the older ones.
So the programs such a comparison builds are compiled with the fusion emitters, whatever
``XLA_FLAGS`` says.
"""

from __future__ import annotations

import jax

FUSION_EMITTERS = {"xla_cpu_use_fusion_emitters": True}


def jit(fun, **kwargs):
    """``jax.jit(fun, **kwargs)``, compiled with XLA:CPU's fusion emitters."""
    return jax.jit(fun, compiler_options=FUSION_EMITTERS, **kwargs)
