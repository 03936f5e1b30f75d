"""A trained policy as an ONNX graph ``obs (batch, obs_dim) -> action (batch, action_dim)``, float32.

Built with onnx's helper API from the layer table (no torch): the observation normalisation and its
clip, one ``MatMul``, ``Add`` and activation per layer, the mean head, then the action the environment
gets (``Max``/``Min`` against the bounds, or the tanh squash). The action is the deterministic one,
the mean mu(obs). Opset 17, IR version 8, so that runtimes from 2022 on load it. The metadata
properties hold the spaces, the squash, npppo's version and the source checkpoint with its SHA-256.
Needs the optional extra: ``pip install 'npppo[onnx]'``.
"""

from __future__ import annotations

import json

import numpy as np

from npppo import __version__
from npppo.errors import NpppoError
from npppo.export.model import ExportModel
from npppo.inference import OBS_EPS

OPSET = 17
IR_VERSION = 8  # the IR of opset 17 (onnx 1.12): the oldest that holds this graph
INSTALL = "pip install 'npppo[onnx]'"
# name -> (ONNX operator, its attributes); identity has no node
ACTIVATION_OPS = {"relu": "Relu", "elu": "Elu", "softplus": "Softplus", "tanh": "Tanh"}


def require_onnx():
    """The onnx module, or NpppoError with the install command."""
    try:
        import onnx
    except ImportError:
        raise NpppoError(f"--format onnx needs the onnx package, an optional extra: {INSTALL}") from None
    return onnx


def metadata(model: ExportModel) -> dict[str, str]:
    """The model's metadata properties (strings; lists and dicts as JSON)."""
    return {
        "producer": f"npppo {__version__}",
        "source": str(model.source), "source_sha256": model.sha256,
        "env_id": model.env_id or "", "preset": model.preset or "",
        "observation_shape": json.dumps([model.obs_dim]),
        "action_shape": json.dumps([model.action_dim]),
        "action_low": json.dumps([float(v) for v in model.action_low]),
        "action_high": json.dumps([float(v) for v in model.action_high]),
        "action_squash": model.action_squash,
        "obs_normalization": json.dumps(None if model.obs_clip is None else {"clip": model.obs_clip, "eps": OBS_EPS}),
        "action": "deterministic: the mean mu(obs), " + ("tanh-squashed into the bounds"
                                                         if model.action_squash == "tanh" else "clipped to the bounds"),
    }


def graph_model(model: ExportModel):
    """The onnx ModelProto of ``model``'s deterministic action."""
    onnx = require_onnx()
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers = [], []

    def constant(name: str, values) -> str:
        initializers.append(numpy_helper.from_array(np.asarray(values, np.float32), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attributes) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    x = "obs"
    if model.obs_mean is not None:
        centred = node("Sub", [x, constant("obs_mean", model.obs_mean)], "obs_centred")
        scaled = node("Div", [centred, constant("obs_std", model.obs_std)], "obs_scaled")
        x = node("Clip", [scaled, constant("obs_clip_low", -model.obs_clip), constant("obs_clip_high", model.obs_clip)],
                 "obs_normalized")
    for layer in model.trunk + model.mu_head:
        symbol = layer.name.replace(".", "_")
        z = node("MatMul", [x, constant(f"{symbol}_weight", layer.weight)], f"{symbol}_matmul")
        x = node("Add", [z, constant(f"{symbol}_bias", layer.bias)], f"{symbol}_z")
        if layer.activation in ACTIVATION_OPS:
            attributes = {"alpha": layer.alpha} if layer.activation == "elu" else {}
            x = node(ACTIVATION_OPS[layer.activation], [x], f"{symbol}_out", **attributes)
    low, high = constant("action_low", model.action_low), constant("action_high", model.action_high)
    if model.action_squash == "tanh":
        squashed = node("Tanh", [x], "mu_tanh")
        shifted = node("Add", [squashed, constant("one", 1.0)], "mu_tanh_plus_one")
        scaled = node("Mul", [shifted, constant("half_range", model.half_range)], "mu_scaled")
        x = node("Add", [scaled, low], "mu_squashed")
    lowered = node("Max", [x, low], "action_above_low")
    node("Min", [lowered, high], "action")
    batch = "batch"
    graph = helper.make_graph(
        nodes, "npppo_policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, [batch, model.obs_dim])],
        [helper.make_tensor_value_info("action", TensorProto.FLOAT, [batch, model.action_dim])],
        initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="npppo", producer_version=__version__,
                              doc_string="npppo policy: raw observations in, the environment's action out")
    proto.ir_version = IR_VERSION
    helper.set_model_props(proto, metadata(model))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def files(model: ExportModel) -> bytes:
    """The serialised ONNX model."""
    return graph_model(model).SerializeToString()
