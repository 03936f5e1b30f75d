"""A trained policy as a dependency-free C99 header and source (``NAME.h``, ``NAME.c``).

The source holds the weights as ``static const float`` arrays (row-major ``W (fan_in, fan_out)``, as
in the layer table) and one loop nest per layer, with the sizes as literals so that the compiler can
vectorise the ``z[j] += x[i] W[i][j]`` rows. It needs ``<math.h>`` alone (link with ``-lm``), allocates
nothing and keeps no state, so it is reentrant. Two entry points (see :func:`header`):

    void NAME_act(const float *obs, float *action);                          the mean, to the bounds
    void NAME_act_stochastic(const float *obs, const float *noise, float *action);   mu + sigma noise

The arithmetic is float32, the formulas those of :mod:`npppo.inference` (see :mod:`npppo.export.model`).
Each activation is written so that a NaN input stays NaN, as in NumPy (``z < 0 ? 0 : z``, not
``z > 0 ? z : 0``), and so are the clips: a NaN observation gives a NaN action, not a bound.
"""

from __future__ import annotations

import hashlib

import numpy as np

from npppo import __version__
from npppo.export.model import ExportModel, Layer
from npppo.inference import OBS_EPS
from npppo.nn.activations import EXPM1_CONSTANTS_FLOAT32, EXPM1_DOUBLINGS_FLOAT32

# The activations, written into each layer's loop (a call would stay a call at -O2, and keep the loop
# scalar): the formulas of npppo.inference.ACTIVATIONS, with e^z - 1 and tanh computed as npppo's
# float32 kernels compute them (npppo.nn.activations.expm1_nonpositive, its float32 constants): from
# + and * alone, so that the loops vectorise (expm1f and tanhf are libm calls: the seed policy's act
# took 3.5 us with them at -O3 -march=native, 1.4 us without). A NaN stays NaN in each.
ACTIVATIONS = ("identity", "relu", "elu", "softplus", "tanh")
COMPILE_FLAGS = "-std=c99 -Wall -Wextra -pedantic"


def c_float(value: float) -> str:
    """The shortest C literal that gives the float32 ``value`` back exactly."""
    value = np.float32(value)
    if np.isinf(value):
        return "INFINITY" if value > 0 else "-INFINITY"
    positional = np.format_float_positional(value, unique=True, trim=".")
    scientific = np.format_float_scientific(value, unique=True, trim="-")
    return (positional if len(positional) <= len(scientific) else scientific) + "f"


def _array(name: str, values: np.ndarray, comment: str = "") -> str:
    """A ``static const float`` definition of a 1-D or 2-D array."""
    values = np.asarray(values, np.float32)
    dims = "".join(f"[{n}]" for n in values.shape)
    if values.ndim == 1:
        body = _wrap([c_float(v) for v in values], "    ")
    else:
        body = ",\n".join("    {" + _wrap([c_float(v) for v in row], "     ").strip() + "}" for row in values)
    head = f"/* {comment} */\n" if comment else ""
    return f"{head}static const float {name}{dims} = {{\n{body}\n}};\n"


def _wrap(items: list[str], indent: str, width: int = 110) -> str:
    lines, line = [], indent
    for item in items:
        if len(line) + len(item) + 2 > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += item + ", "
    lines.append(line.rstrip().rstrip(","))
    return "\n".join(lines)


def _describe(layers: list[Layer]) -> str:
    """'70 -> 60 elu -> 50 elu -> 1 relu'."""
    steps = [str(layers[0].weight.shape[0])]
    for layer in layers:
        alpha = f" (alpha {layer.alpha:g})" if layer.activation == "elu" else ""
        steps.append(f"{layer.weight.shape[1]} {layer.activation}{alpha}")
    return " -> ".join(steps)


def _part_function(name: str, part: str, layers: list[Layer]) -> str:
    """``static void NAME_PART(const float *in, float *out)``: the part's layers in order."""
    lines = [f"static void {name}_{part}(const float *in, float *out)", "{"]
    lines += [f"    float a{k}[{layer.weight.shape[1]}];" for k, layer in enumerate(layers)]
    lines.append("    int i, j;")
    for k, layer in enumerate(layers):
        fan_in, fan_out = layer.weight.shape
        symbol = f"{name}_{layer.name.replace('.', '_')}"
        source = "in" if k == 0 else f"a{k - 1}"
        lines += [
            f"    /* {layer.name}: {fan_in} -> {fan_out}, {layer.activation} */",
            f"    for (j = 0; j < {fan_out}; ++j) a{k}[j] = {symbol}_bias[j];",
            f"    for (i = 0; i < {fan_in}; ++i) {{",
            f"        const float x = {source}[i];",
            f"        for (j = 0; j < {fan_out}; ++j) a{k}[j] += x * {symbol}_weight[i][j];",
            "    }",
        ]
        lines += _activation_loop(f"a{k}", fan_out, layer.activation, layer.alpha)
    lines += [f"    for (j = 0; j < {layers[-1].weight.shape[1]}; ++j) out[j] = a{len(layers) - 1}[j];", "}", ""]
    return "\n".join(lines)


def _expm1_lines(m: str) -> list[str]:
    """C lines setting ``float e`` to e^m - 1 for ``m <= 0`` (clamped), within 4 ulp of expm1f: w = m / 2^d,
    its Taylor series to w^10, then d doublings expm1(2w) = e (e + 2)."""
    k = [c_float(v) for v in EXPM1_CONSTANTS_FLOAT32]
    series = k[11]
    for coefficient in reversed(k[2:11]):
        series = f"{coefficient} + w * ({series})"
    return [f"const float w = ({m} < {k[1]} ? {k[1]} : {m}) * {k[0]};", f"float e = w * ({series});",
            *["e = e * (e + 2.0f);"] * EXPM1_DOUBLINGS_FLOAT32]


def _activation_loop(values: str, n: int, activation: str, alpha: float) -> list[str]:
    """The loop applying ``activation`` in place to ``float values[n]``."""
    if activation == "identity":
        return []
    if activation == "relu":
        body = [f"{values}[j] = z < 0.0f ? 0.0f : z;"]
    elif activation == "softplus":  # log(1 + e^z) = max(z, 0) + log1p(e^-|z|): no overflow
        body = [f"{values}[j] = (z > 0.0f ? z : 0.0f) + log1pf(expf(-fabsf(z)));"]
    elif activation == "elu":  # z if z > 0 else alpha (e^z - 1)
        body = ["const float m = z > 0.0f ? 0.0f : z;", *_expm1_lines("m"),
                f"{values}[j] = z > 0.0f ? z : {c_float(alpha)} * e;"]
    elif activation == "tanh":  # tanh|z| = -e / (2 + e) with e = expm1(-2|z|): no cancellation near 0
        body = ["const float m = -2.0f * fabsf(z);", *_expm1_lines("m"), "const float magnitude = -e / (2.0f + e);",
                f"{values}[j] = z >= 0.0f ? magnitude : (z < 0.0f ? -magnitude : z);"]
    else:
        raise ValueError(f"activation {activation!r} has no C form: add it to npppo.export.c")
    return [f"    for (j = 0; j < {n}; ++j) {{", f"        const float z = {values}[j];",
            *[f"        {line}" for line in body], "    }"]


def source(model: ExportModel, name: str) -> str:
    """The text of ``NAME.c``."""
    d, n = model.action_dim, model.obs_dim
    out = [f"/* {name}.c: a trained npppo policy as C99; the interface is in {name}.h. Generated by npppo "
           f"{__version__}\n * from {model.source.name} (sha256 {model.sha256}); do not edit. */",
           "#include <math.h>", f'#include "{name}.h"', ""]
    if model.obs_mean is not None:
        out.append(_array(f"{name}_obs_mean", model.obs_mean, "observation normalisation: the running mean"))
        out.append(_array(f"{name}_obs_std", model.obs_std, f"... and sqrt(var + {OBS_EPS:g})"))
    for layers in model.parts.values():
        for layer in layers:
            symbol = f"{name}_{layer.name.replace('.', '_')}"
            fan_in, fan_out = layer.weight.shape
            out.append(_array(f"{symbol}_weight", layer.weight, f"{layer.name}: W ({fan_in}, {fan_out}), "
                              f"then b; {layer.activation}" + (f" (alpha {layer.alpha:g})"
                                                                if layer.activation == "elu" else "")))
            out.append(_array(f"{symbol}_bias", layer.bias))
    if model.sigma is not None:
        out.append(_array(f"{name}_sigma", model.sigma, "the state-independent sigma, exp(log_std)"))
    out.append(_array(f"{name}_action_low", model.action_low, "the action bounds"))
    out.append(_array(f"{name}_action_high", model.action_high))
    if model.action_squash == "tanh":
        out.append(_array(f"{name}_half_range", model.half_range, "(high - low) / 2"))
    out.append(f"static float {name}_clip(float v, float low, float high)\n{{\n"
               "    return v < low ? low : (v > high ? high : v);  /* a NaN stays NaN */\n}\n")
    if model.obs_mean is not None:
        out.append(f"static void {name}_features(const float *obs, float *x)\n{{\n    int j;\n"
                   f"    for (j = 0; j < {n}; ++j)\n"
                   f"        x[j] = {name}_clip((obs[j] - {name}_obs_mean[j]) / {name}_obs_std[j], "
                   f"{c_float(-model.obs_clip)}, {c_float(model.obs_clip)});\n}}\n")
    for part, layers in model.parts.items():
        if layers:
            out.append(_part_function(name, part, layers))
    if model.action_squash == "tanh":
        to_action = (f"{name}_clip({name}_action_low[d] + (tanhf(u[d]) + 1.0f) * {name}_half_range[d], "
                     f"{name}_action_low[d], {name}_action_high[d])")
    else:
        to_action = f"{name}_clip(u[d], {name}_action_low[d], {name}_action_high[d])"
    out.append(f"static void {name}_to_action(const float *u, float *action)\n{{\n    int d;\n"
               f"    for (d = 0; d < {d}; ++d) action[d] = {to_action};\n}}\n")
    trunk_out = model.trunk[-1].weight.shape[1]
    if model.obs_mean is not None:
        declare = [f"    float x[{n}], h[{trunk_out}], u[{d}];"]
        features = [f"    {name}_features(obs, x);", f"    {name}_trunk(x, h);"]
    else:
        declare, features = [f"    float h[{trunk_out}], u[{d}];"], [f"    {name}_trunk(obs, h);"]
    out.append("\n".join([f"void {name}_act(const float *obs, float *action)", "{", *declare, *features,
                          f"    {name}_mu_head(h, u);", f"    {name}_to_action(u, action);", "}", ""]))
    if model.sigma is None:
        declare.append(f"    float sigma[{d}];")
        sigma_lines = [f"    {name}_sigma_head(h, sigma);",
                       f"    for (d = 0; d < {d}; ++d) u[d] += (sigma[d] + {c_float(model.sigma_min)}) * noise[d];"]
    else:
        sigma_lines = [f"    for (d = 0; d < {d}; ++d) u[d] += {name}_sigma[d] * noise[d];"]
    out.append("\n".join([f"void {name}_act_stochastic(const float *obs, const float *noise, float *action)",
                          "{", *declare, "    int d;", *features, f"    {name}_mu_head(h, u);",
                          *sigma_lines, f"    {name}_to_action(u, action);", "}", ""]))
    return "\n".join(out)


def header(model: ExportModel, name: str, source_text: str) -> str:
    """The text of ``NAME.h``: the interface, the sizes, the bounds, and where the weights came from."""
    upper = name.upper()
    bounds = "\n".join(f" *   action[{k}] in [{float(lo):g}, {float(hi):g}]"
                       for k, (lo, hi) in enumerate(zip(model.action_low, model.action_high, strict=True)))
    if model.obs_mean is not None:
        features = (f"normalised inside: clip((obs - mean) / sqrt(var + {OBS_EPS:g}), -{model.obs_clip:g}, "
                    f"{model.obs_clip:g}) with the training run's statistics")
    else:
        features = "used as given (the policy was trained on raw observations)"
    if model.action_squash == "tanh":
        to_action = "tanh-squashed into the bounds: low + (tanh(u) + 1) (high - low) / 2"
    else:
        to_action = "clipped to the bounds"
    sigma = (f"state-independent exp(log_std) = {', '.join(f'{float(s):.6g}' for s in model.sigma)}"
             if model.sigma is not None else f"sigma head {_describe(model.sigma_head)}, plus {model.sigma_min:g}")
    sha_c = hashlib.sha256(source_text.encode()).hexdigest()
    return f"""\
/* {name}.h: a trained npppo policy as dependency-free C99. Generated by npppo {__version__}; do not edit.
 *
 * source        {model.source}
 * source sha256 {model.sha256}
 * {name}.c sha256 {sha_c}
 * environment   {model.env_id or "(not recorded)"}; preset: {model.preset or "(none matched)"}
 *
 * input   obs[{upper}_OBS_DIM] = obs[{model.obs_dim}], the raw observation as the environment gives it,
 *         {features}
 * output  action[{upper}_ACTION_DIM] = action[{model.action_dim}], {to_action}:
{bounds}
 * network trunk {_describe(model.trunk)}; mu head {_describe(model.mu_head)};
 *         {sigma}
 *
 * Build:  cc {COMPILE_FLAGS} -O3 -c {name}.c   (needs <math.h> alone; link with -lm; -O3 vectorises
 *         the activations, gcc 12 at -O2 does not; add -march=native where it runs where it is built)
 * No allocation, no state: the functions are reentrant and thread-safe. Arithmetic in float32;
 * npppo's tests compare it with npppo.inference to 1e-5 * max(1, |action|). A NaN in obs gives NaN.
 */
#ifndef {upper}_H
#define {upper}_H

#define {upper}_OBS_DIM {model.obs_dim}
#define {upper}_ACTION_DIM {model.action_dim}

#ifdef __cplusplus
extern "C" {{
#endif

/* The deterministic action: the mean mu(obs), {to_action.split(":")[0]}. */
void {name}_act(const float *obs, float *action);

/* A stochastic action: mu(obs) + sigma(obs) * noise, {to_action.split(":")[0]}; noise[{upper}_ACTION_DIM]
 * holds the caller's standard-normal draws (one per action dimension). */
void {name}_act_stochastic(const float *obs, const float *noise, float *action);

#ifdef __cplusplus
}}
#endif

#endif /* {upper}_H */
"""


def files(model: ExportModel, name: str) -> dict[str, bytes]:
    """{'NAME.h': ..., 'NAME.c': ...}, ready to be written."""
    text = source(model, name)
    return {f"{name}.h": header(model, name, text).encode(), f"{name}.c": text.encode()}
