"""Graph networks (nngraph style): any directed acyclic graph of modules.

Calling a module on nodes builds a node instead of computing anything::

    x = nn.Input()                      # or nn.Identity()()
    h = nn.Tanh()(nn.Linear(10, 20)(x))
    a = nn.Linear(20, 20)(h)            # h fans out to a and to the sum
    y = nn.CAddTable()(a, h)            # several parents: the module gets the table [a, h]
    net = nn.Graph(x, y)                # or nn.Graph([x1, x2], [y1, y2])

fprop runs the nodes in topological order. bprop runs them in reverse order; a node
whose output feeds several consumers receives the **sum** of their gradients (the
lecture's fan-out rule). A module used by several nodes (shared weights) runs each
use through a replica sharing its parameters and gradients, so the gradients of every
use accumulate in one place.

A graph with one input takes that input as is; with K inputs it takes a table of K
entries. Likewise it returns one output, or a table of its outputs.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ..errors import FormatError, ShapeError, describe, name_of, shape_error
from ._tables import exclusive_runners, is_table, sum_into
from .containers import Container
from ._tree import has_parameters, tree_cached
from .composite import backprop
from .module import Module, saved, scratch
from .shape import Identity
from .table_layout import SelectTable


class Node:
    """A module applied to the outputs of parent nodes (build with ``module(node, ...)``).

    ``module(a)`` gives a node whose module gets a's output; ``module(a, b)`` or
    ``module([a, b])`` one whose module gets the table [a's output, b's output];
    ``module()`` a parentless node, which must be an input of the graph.
    """

    _is_graph_node = True
    _counter = itertools.count()

    def __init__(self, module: Module, parents: Sequence[Node] = (), table: bool = False) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"Node: expected a Module, got {type(module).__name__}")
        self.module = module
        self.parents = list(parents)
        self.table = bool(table)
        self.name: str | None = None
        self.attributes: dict[str, str] = {}
        self._serial = next(Node._counter)

    def annotate(self, name: object = None, **attributes: object) -> Node:
        """Name the node (shown in the text rendering and the DOT export) and set Graphviz
        attributes for it (e.g. ``color="red"``); returns the node."""
        if name is not None:
            self.name = str(name)
        self.attributes.update({str(k): str(v) for k, v in attributes.items()})
        return self

    def split(self, n: int) -> list[Node]:
        """``n`` nodes selecting the entries 0..n-1 of this node's (table) output."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"Node.split: n must be a positive int, got {n!r}")
        return [SelectTable(i)(self) for i in range(n)]

    def __iter__(self) -> NoReturn:
        raise TypeError("a graph Node is not iterable; use node.split(n) to take the entries of a table output")

    def __repr__(self) -> str:
        label = f"{self.name}: " if self.name else ""
        return f"Node({label}{self.module!r})"


def make_node(module: Module, args: tuple[Any, ...]) -> Node:
    """``module(*args)`` where the arguments are nodes (or a list of nodes, or nothing)."""
    if not args:
        return Node(module)
    if len(args) == 1 and is_table(args[0]):
        parents, table = list(args[0]), True
    else:
        parents, table = list(args), len(args) > 1
    if not parents or not all(isinstance(p, Node) for p in parents):
        got = ", ".join(type(p).__name__ for p in parents)
        raise TypeError(f"{name_of(module)}: to build a graph node, call the module on nodes only (got {got}); "
                        "to compute, call it on arrays")
    return Node(module, parents, table)


def Input(name: object = None) -> Node:
    """A graph input node: ``nn.Identity()()``, optionally named."""
    return Identity()().annotate(name)


def _as_nodes(what: str, value: Any) -> list[Node]:
    nodes = list(value) if is_table(value) else [value]
    if not nodes or not all(isinstance(n, Node) for n in nodes):
        raise TypeError(f"Graph: {what} must be a Node or a list of Nodes, got {describe(value)}")
    return nodes


def _topological(outputs: list[Node]) -> list[Node]:
    """Ancestors of ``outputs``, parents before children, ties broken by creation order
    (so the order follows the code that built the graph); raises on a cycle."""
    found, stack = {}, list(outputs)
    while stack:
        node = stack.pop()
        if id(node) not in found:
            found[id(node)] = node
            stack.extend(node.parents)
    waiting = {key: len(node.parents) for key, node in found.items()}
    consumers: dict[int, list[Node]] = {key: [] for key in found}
    for key, node in found.items():
        for parent in node.parents:
            consumers[id(parent)].append(node)
    ready = [(node._serial, key) for key, node in found.items() if waiting[key] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, key = heapq.heappop(ready)
        order.append(found[key])
        for child in consumers[key]:
            waiting[id(child)] -= 1
            if waiting[id(child)] == 0:
                heapq.heappush(ready, (child._serial, id(child)))
    if len(order) != len(found):
        stuck = min((n for k, n in found.items() if waiting[k] > 0), key=lambda n: n._serial)
        raise ValueError(f"Graph: the nodes form a cycle (through {stuck!r}); a graph must be acyclic "
                         "(unfold recurrences in time)")
    return order


class Graph(Container):
    """A network built from any directed acyclic graph of modules (see the module doc).

    ``Graph(inputs, outputs)``: ``inputs`` a parentless node or a list of them (one per
    graph input, in the order the input table gives them), ``outputs`` a node or a list.

    fprop:  for each node in topological order, y_v = F_v(x_v), where x_v is the graph
            input for an input node, the parent's output for one parent, the table of
            the parents' outputs for several.
    bprop:  for each node in reverse order, G_v = sum over consumers c of the part of
            dE/dx_c that belongs to v (plus dE/dy for an output node), then
            dE/dx_v = F_v.backward(x_v, G_v); the graph's grad_input is the input nodes'.
    Nodes whose gradient is ``None`` (e.g. only a Switch selector depends on them) are
    skipped in bprop.

    Errors: a cycle, an input that does not reach any output, a parentless node that
    is not an input, an input table of the wrong length.
    ``repr(graph)`` renders the graph as text; :meth:`to_dot` exports Graphviz DOT.
    """

    node_inputs = saved("the input of every node in the last forward (arrays or tables), by plan position")
    node_grad_sums = scratch("per node, the sum of the gradients from its consumers (fan-out > 1)")
    replicas = scratch("plan position -> (module, replica) for a module's second and later uses")

    def __init__(self, inputs: Node | Sequence[Node], outputs: Node | Sequence[Node]) -> None:
        Module.__init__(self)
        self.__dict__.pop("_spec_args", None)
        self._children = []
        inputs, outputs = _as_nodes("inputs", inputs), _as_nodes("outputs", outputs)
        if len({id(n) for n in inputs}) != len(inputs):
            raise ValueError("Graph: a node appears twice among the inputs")
        for k, node in enumerate(inputs):
            if node.parents:
                raise ValueError(f"Graph: input {k} ({node!r}) has parents; inputs must be parentless nodes "
                                 "such as nn.Input() or nn.Identity()()")
        order = _topological(outputs)
        position = {id(node): i for i, node in enumerate(order)}
        for k, node in enumerate(inputs):
            if id(node) not in position:
                raise ValueError(f"Graph: input {k} ({node!r}) does not reach any output; "
                                 "remove it or connect it to an output")
        input_ids = {id(n) for n in inputs}
        for node in order:
            if not node.parents and id(node) not in input_ids:
                raise ValueError(f"Graph: node {node!r} has no parents and is not among the inputs; "
                                 "list it in Graph(inputs, ...)")
        module_index = {}
        for node in order:
            if id(node.module) not in module_index:
                module_index[id(node.module)] = len(self._children)
                self._children.append(node.module)
        self._plan: list[dict[str, Any]] = [
            {
                "module": module_index[id(node.module)],
                "parents": [position[id(p)] for p in node.parents],
                "table": node.table,
                "name": node.name,
                "attributes": dict(node.attributes),
            }
            for node in order
        ]
        self._inputs = [position[id(n)] for n in inputs]
        self._outputs = [position[id(n)] for n in outputs]
        self._input_slot = {pos: k for k, pos in enumerate(self._inputs)}

    # ------------------------------------------------------------------ structure
    def add(self, module: Module) -> NoReturn:
        raise TypeError("Graph: the structure is fixed at construction; build a new Graph(inputs, outputs)")

    insert = remove = add

    def _runners(self) -> list[Module]:
        modules = [self._children[step["module"]] for step in self._plan]
        if self.replicas is None:
            self.replicas = {}
        return exclusive_runners(modules, self.replicas)

    def _label(self, i: int) -> str:
        step = self._plan[i]
        name = f"{step['name']}: " if step["name"] else ""
        return f"node {i} ({name}{name_of(self._children[step['module']])})"

    # ------------------------------------------------------------------ fprop
    def _feeds(self, input: Any) -> list[Any]:
        if len(self._inputs) == 1:
            return [input]
        if not is_table(input) or len(input) != len(self._inputs):
            raise shape_error(self, f"a table (list) of {len(self._inputs)} inputs (one per graph input)", input)
        return list(input)

    def update_output(self, input: Any) -> Any:
        feeds = self._feeds(input)
        runners = self._runners()
        values, node_inputs = [None] * len(self._plan), [None] * len(self._plan)
        for i, step in enumerate(self._plan):
            if i in self._input_slot:
                x = feeds[self._input_slot[i]]
            elif step["table"]:
                x = [values[p] for p in step["parents"]]
            else:
                x = values[step["parents"][0]]
            try:
                values[i] = runners[i].forward(x)
            except Exception as error:
                error.add_note(f"  in {self._label(i)} of Graph")
                raise
            node_inputs[i] = x
        self.node_inputs = node_inputs
        outputs = [values[o] for o in self._outputs]
        self.output = outputs[0] if len(outputs) == 1 else outputs
        return self.output

    # ------------------------------------------------------------------ bprop
    def _needs_input_grad(self) -> list[bool]:
        """Per node, when the graph's input gradient is not needed: is dE/d(its input)?
        Only where an ancestor has parameters (nothing flows to the data). Kept between
        steps (see ``_tree.tree_cached``)."""
        needed: list[bool] = []
        for step in self._plan:
            needed.append(any(needed[p] or has_parameters(self._children[self._plan[p]["module"]])
                              for p in step["parents"]))  # fmt: skip
        return needed

    def _backprop(self, input: Any, grad_output: Any, scale: float, need_input: bool, need_params: bool) -> None:
        node_inputs = self.node_inputs
        if node_inputs is None:
            raise RuntimeError(f"{name_of(self)}: backward called before forward")
        runners = self._runners()
        wanted = [True] * len(self._plan) if need_input else tree_cached(self, "_needs_grad", self._needs_input_grad)
        n = len(self._plan)
        parts: list[list[Any]] = [[] for _ in range(n)]
        if len(self._outputs) == 1:
            parts[self._outputs[0]].append(grad_output)
        else:
            if not is_table(grad_output) or len(grad_output) != len(self._outputs):
                raise shape_error(self, f"grad_output as a table of {len(self._outputs)} entries (one per output)",
                                  grad_output)
            for k, o in enumerate(self._outputs):
                parts[o].append(grad_output[k])
        sums = self.node_grad_sums
        if sums is None or len(sums) != n:
            sums = self.node_grad_sums = [None] * n
        input_grads = [None] * len(self._inputs)
        for i in range(n - 1, -1, -1):
            step = self._plan[i]
            present = [p for p in parts[i] if p is not None]
            if len(present) > 1:
                sums[i] = total = sum_into(self.backend, sums[i], present, self,
                                           f"the gradients reaching {self._label(i)} from its consumers")
            else:
                total = present[0] if present else None
            gin = None
            if total is not None:
                try:
                    gin = backprop(runners[i], node_inputs[i], total, scale, wanted[i], need_params)
                except Exception as error:
                    error.add_note(f"  in {self._label(i)} of Graph")
                    raise
            if i in self._input_slot:
                input_grads[self._input_slot[i]] = gin
            elif step["table"]:
                if gin is not None and (not is_table(gin) or len(gin) != len(step["parents"])):
                    raise ShapeError(f"{name_of(self)}: {self._label(i)} returned {describe(gin)} as grad_input, "
                                     f"expected a table of {len(step['parents'])} entries")
                for slot, parent in enumerate(step["parents"]):
                    parts[parent].append(None if gin is None else gin[slot])
            else:
                parts[step["parents"][0]].append(gin)
        if need_input:
            self.grad_input = input_grads[0] if len(input_grads) == 1 else input_grads

    # ------------------------------------------------------------------ rendering
    def __repr__(self) -> str:
        first_use: dict[int, int] = {}
        rows = []
        for i, step in enumerate(self._plan):
            module = self._children[step["module"]]
            name = f"{step['name']} = " if step["name"] else ""
            text = repr(module).replace("\n", "\n      ")
            if i in self._input_slot:
                source = f"<- input {self._input_slot[i]}"
            else:
                refs = [f"({p})" for p in step["parents"]]
                source = "<- " + ("[" + ", ".join(refs) + "]" if step["table"] else refs[0])
            shared = ""
            if step["module"] in first_use:
                shared = f"  [same module as ({first_use[step['module']]})]"
            else:
                first_use[step["module"]] = i
            rows.append(f"  ({i}) {name}{text} {source}{shared}")
        outs = ", ".join(f"({o})" for o in self._outputs)
        return "Graph {\n" + "\n".join(rows) + f"\n  outputs: {outs}\n}}"

    def to_dot(self, title: str = "Graph", path: str | os.PathLike | None = None) -> str:
        """The graph in Graphviz DOT (``dot -Tpng g.dot -o g.png``); written to ``path`` if given.

        Nodes show their index, name and module; an edge into a node with a table
        input is labelled with its position in that table.
        """

        def quote(text: object) -> str:
            return json.dumps(str(text))

        lines = [f"digraph {quote(title)} {{", "  rankdir=TB;", '  node [shape=box, style=rounded, fontname="Helvetica"];']
        for k, pos in enumerate(self._inputs):
            lines.append(f"  in{k} [label={quote(f'input {k}')}, shape=plaintext];")
            lines.append(f"  in{k} -> n{pos};")
        for i, step in enumerate(self._plan):
            module = self._children[step["module"]]
            label = f"({i}) " + (f"{step['name']}\n" if step["name"] else "") + repr(module).split("\n")[0]
            attrs = {"label": label}
            if i in self._input_slot:
                attrs["shape"] = "ellipse"
            attrs.update(step["attributes"])
            lines.append(f"  n{i} [" + ", ".join(f"{k}={quote(v)}" for k, v in attrs.items()) + "];")
            for slot, parent in enumerate(step["parents"]):
                label = f" [label={quote(slot)}]" if step["table"] else ""
                lines.append(f"  n{parent} -> n{i}{label};")
        for k, pos in enumerate(self._outputs):
            lines.append(f"  out{k} [label={quote(f'output {k}')}, shape=plaintext];")
            lines.append(f"  n{pos} -> out{k};")
        lines.append("}")
        text = "\n".join(lines) + "\n"
        if path is not None:
            from ..tensor_file import atomic_write  # the file layer below nn (not io, which imports nn)

            atomic_write(path, [text.encode("utf-8")])
        return text

    # ------------------------------------------------------------------ files
    def spec(self) -> dict[str, Any]:
        return {
            "type": "Graph",
            "args": {},
            "children": [child.spec() for child in self._children],
            "nodes": [dict(step) for step in self._plan],
            "inputs": list(self._inputs),
            "outputs": list(self._outputs),
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any], build: Callable[[Any], Module]) -> Graph:
        """Rebuild a Graph from its :meth:`spec` (``build`` makes each child module)."""
        try:
            modules = [build(child) for child in spec["children"]]
            nodes: list[Node] = []
            for step in spec["nodes"]:
                parents = [nodes[p] for p in step["parents"]]
                node = Node(modules[step["module"]], parents, step["table"])
                node.annotate(step.get("name"), **step.get("attributes", {}))
                nodes.append(node)
            graph = cls([nodes[i] for i in spec["inputs"]], [nodes[o] for o in spec["outputs"]])
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise FormatError(f"bad Graph description: {exc}") from exc
        if [id(m) for m in graph._children] != [id(m) for m in modules]:
            raise FormatError("bad Graph description: the modules are not listed in the order the graph uses them")
        return graph
