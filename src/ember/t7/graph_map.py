"""nngraph's ``gModule`` -> :class:`ember.nn.Graph`, and the ``rnn`` package's layers.

nngraph stores a gModule's nodes in topological order (``forwardnodes``). Each node's
``data`` holds its ``module`` (absent for the graph's input and output nodes and for the
split / select nodes that unpack a table), and ``mapindex``: its parents, in order. The
input node ``innode`` receives the gModule's input; with several inputs it feeds a
split node whose children ``selectindex`` i pick input i.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..errors import FormatError
from .mapping import as_list, builds
from .reader import TorchObject
from .._typing import Array


def _parents(data, nodes_by_data, path):
    """The parent nodes of a node, in nngraph's order (``mapindex[1], mapindex[2], ...``)."""
    parents = []
    for parent_data in as_list(data.get("mapindex"), f"{path}.mapindex"):
        if id(parent_data) not in nodes_by_data:
            raise FormatError(f"{path}: a node's parent is not among the forward nodes (corrupted graph)")
        parents.append(nodes_by_data[id(parent_data)])
    return parents


@builds("gModule")
def _gmodule(mapper, obj, path):
    nodes = as_list(obj.get("forwardnodes"), "forwardnodes")
    if not nodes or not all(isinstance(n, TorchObject) and isinstance(n.get("data"), dict) for n in nodes):
        raise FormatError("forwardnodes must be a list of nngraph nodes")
    n_inputs = int(obj.get("nInputs", 1) or 1)
    # gModule's innode / outnode may be backward-graph nodes: they share the data table
    innode, outnode = (getattr(obj.get(k), "get", lambda _: None)("data") for k in ("innode", "outnode"))
    table_input = object()  # marks the gModule's input table, before it is split
    built, inputs = {}, {}
    by_data = {id(n["data"]): n for n in nodes}
    for position, node in enumerate(nodes, 1):
        data, where = node["data"], f"{path}.forwardnodes[{position}]"
        parents = [built.get(id(p)) for p in _parents(data, by_data, where)]
        if data is innode:
            if n_inputs == 1:
                built[id(node)] = inputs[0] = nn.Input()
            else:
                built[id(node)] = table_input
        elif data is outnode:
            continue
        elif any(p is None for p in parents):
            raise FormatError(f"{where}: the nodes are not in topological order")
        elif "selectindex" in data and "module" not in data:
            index = int(data["selectindex"]) - 1
            if parents == [table_input]:
                if not 0 <= index < n_inputs:
                    raise FormatError(f"{where}: input {index + 1} of a gModule with {n_inputs} inputs")
                built[id(node)] = inputs[index] = nn.Input()
            else:
                built[id(node)] = nn.SelectTable(index)(*parents)
        elif "module" not in data:  # a split node: passes its parent's table on
            if len(parents) != 1:
                raise FormatError(f"{where}: a node without a module must have one parent")
            built[id(node)] = parents[0]
        else:
            module = mapper.module(data["module"], f"{where}.module")
            if table_input in parents:
                raise FormatError(f"{where}: a module takes the gModule's whole input table; ember needs it split")
            built[id(node)] = module(*parents)
    if id(outnode) not in by_data or innode is None:
        raise FormatError("the gModule's input or output node is not among its forward nodes")
    outputs = [built[id(p)] for p in _parents(outnode, by_data, f"{path}.outnode")]
    if len(inputs) != n_inputs or not outputs:
        raise FormatError(f"found {len(inputs)} of {n_inputs} inputs and {len(outputs)} outputs")
    ordered_inputs = [inputs[i] for i in range(n_inputs)]
    return nn.Graph(ordered_inputs[0] if n_inputs == 1 else ordered_inputs, outputs[0] if len(outputs) == 1 else outputs)


# ---------------------------------------------------------------- the rnn package
_FAST_LSTM_TO_EMBER = [0, 2, 1, 3]  # FastLSTM's gate blocks are (i, g, f, o); ember's (i, f, g, o)


@builds("FastLSTM")
def _fast_lstm(mapper, obj, path):
    i2g, o2g = obj.get("i2g"), obj.get("o2g")
    if not isinstance(i2g, TorchObject) or not isinstance(o2g, TorchObject):
        raise FormatError("FastLSTM without its i2g / o2g layers")
    if obj.get("usenngraph") or obj.get("bn"):
        raise FormatError("FastLSTM with batch normalization has no ember equivalent")
    w_ih, w_hh = mapper.array(i2g, "weight"), mapper.array(o2g, "weight")
    hidden = w_hh.shape[1]
    if w_ih.shape[0] != 4 * hidden or w_hh.shape[0] != 4 * hidden:
        raise FormatError(f"i2g {w_ih.shape} / o2g {w_hh.shape} are not LSTM gate blocks of size {hidden}")

    def reorder(array: Array):
        blocks = array.reshape(4, hidden, *array.shape[1:])
        return np.ascontiguousarray(blocks[_FAST_LSTM_TO_EMBER].reshape(array.shape))

    cell = nn.LSTMCell(w_ih.shape[1], hidden)
    cell.weight_ih, cell.weight_hh = reorder(w_ih), reorder(w_hh)
    bias = mapper.array(i2g, "bias", required=False)
    cell.bias_ih = reorder(bias) if bias is not None else np.zeros_like(cell.bias_ih)
    cell.bias_hh = np.zeros_like(cell.bias_hh)  # o2g is LinearNoBias
    return nn.Recurrent(cell)


@builds("Sequencer", "Recursor")
def _sequencer(mapper, obj, path):
    inner = obj.get("module") or (as_list(obj.get("modules")) or [None])[0]
    module = mapper.module(inner, f"{path}.module")
    # a recurrent module already runs over the whole sequence in ember
    return module if isinstance(module, (nn.Recurrent, nn.LSTM, nn.GRU, nn.RNN)) else nn.Sequencer(module)


@builds("LSTM", "GRU")
def _rnn_peephole(mapper, obj, path):
    kind = obj.class_name.split(".")[-1]
    why = ("has peephole weights (c feeding the gates)" if kind == "LSTM"
           else "applies the reset gate before the hidden product")  # fmt: skip
    raise FormatError(f"rnn's {kind} {why}; ember's {kind} cell does not, so its weights do not map")
