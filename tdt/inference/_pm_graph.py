"""PyMC graph -> JAX programs that take model data as arguments.

:func:`pymc.sampling.jax.get_jaxified_graph` folds shared variables (``pm.Data``) into the
compiled program as constants; a program that must serve many patients (one compilation for a
cohort, :class:`tdt.inference.LaplaceProgram`) replaces them by symbolic inputs first
(:func:`data_inputs`, ``pytensor.graph.replace.graph_replace``)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pymc as pm
import pytensor
from pymc.sampling.jax import get_jaxified_graph

__all__ = ("constrained_draws_fn", "data_inputs")


def data_inputs(model: pm.Model, names: Sequence[str]):
    """``(replace, inputs)``: for each model data variable of ``names`` present in ``model``, a
    symbolic input of the same type that replaces it (``pytensor.graph.replace.graph_replace``),
    so that a program compiled from the model takes the data as an argument instead of folding
    it in as a constant (:func:`pymc.sampling.jax.get_jaxified_graph` replaces shared
    variables by constants)."""
    replace, inputs = {}, []
    for name in names:
        if name in model.named_vars:
            data = model[name]
            symbol = data.type(f"{name}_input")
            replace[data] = symbol
            inputs.append(symbol)
    return replace, inputs


def constrained_draws_fn(model: pm.Model, unravel, data: Sequence[str] = ()):
    """Flat unconstrained ``samples`` (..., draws, dim) -> every free variable (constrained) and
    deterministic of ``model`` (name -> (..., draws, *shape)); jitted, vmapped, compiled once.
    ``data``: names of model data (:func:`data_inputs`) that the returned ``draws_of(samples,
    *values)`` takes as arguments, in that order (those present in the model)."""
    outputs = [v for v in model.unobserved_value_vars if not v.name.endswith("__")]
    replace, inputs = data_inputs(model, data)
    if replace:
        outputs_in = pytensor.graph.replace.graph_replace(outputs, replace, strict=False)
    else:
        outputs_in = outputs
    out_fn = get_jaxified_graph(inputs=[*model.value_vars, *inputs], outputs=outputs_in)
    evaluate = jax.jit(jax.vmap(lambda x, *d: out_fn(*unravel(x), *d),
                                in_axes=(0, *([None] * len(inputs)))))

    def draws_of(samples, *values):
        values = evaluate(jnp.reshape(samples, (-1, samples.shape[-1])), *values)
        return {v.name: np.asarray(val).reshape(*samples.shape[:-1], *np.shape(val)[1:])
                for v, val in zip(outputs, values, strict=True)}
    return draws_of
