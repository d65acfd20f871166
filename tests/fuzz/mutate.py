"""Mutations of safetensors-layout files (model files and checkpoints) and of their
JSON header; each returns ``(new bytes, kind)``."""

from __future__ import annotations

import json

from ember.tensor_file import DIGEST_KEY, header_digest

HOSTILE_VALUES = [2**63, 2**31, -1, 0, 20000, "7", 1.5, None, [], {}, True, float("inf"), -(2**40)]
HOSTILE_TYPES = ["Module", "Container", "Criterion", "ClassNLLCriterion", "os.system", "Sequential", "Linear",
                 "ReLU", "MSECriterion", "Graph", 7, None]  # fmt: skip


DEEP = "__deep_json__"


def dumps(spec) -> str:
    """``json.dumps``, with :data:`DEEP` markers replaced by JSON nested too deeply for the parser."""
    return json.dumps(spec).replace(json.dumps(DEEP), "[" * 5000 + "]" * 5000)


def split(raw: bytes):
    """``(header dict, data bytes)`` of a well-formed file."""
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def join(header: dict, data: bytes, resign: bool) -> bytes:
    """Bytes of ``header`` + ``data``; with ``resign`` the digest is recomputed."""
    if resign and isinstance(header.get("__metadata__"), dict) and DIGEST_KEY in header["__metadata__"]:
        header["__metadata__"][DIGEST_KEY] = header_digest(header, data)
    blob = json.dumps(header).encode()
    return len(blob).to_bytes(8, "little") + blob + data


def byte_level(raw: bytes, rng):
    """Flips, truncation, extension or a new header length."""
    kind = rng.choice(["flip", "truncate", "extend", "header-length"])
    data = bytearray(raw)
    if kind == "flip":
        for _ in range(int(rng.integers(1, 5))):
            data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
    elif kind == "truncate":
        data = data[: int(rng.integers(len(data)))]
    elif kind == "extend":
        data += bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype="uint8"))
    else:
        n = int.from_bytes(data[:8], "little")
        new = int(rng.choice([0, 1, n - 1, n + 1, n + 8, 2**31, 2**63, int(rng.integers(2**40))]))
        data[:8] = (new % 2**64).to_bytes(8, "little")
    return bytes(data), kind


def tensor_entry(header: dict, rng):
    """Edit one array entry: shape, dtype (same byte count where it can), offsets, presence."""
    names = [k for k in header if k != "__metadata__"]
    if not names:
        return "no-entry"
    name = str(rng.choice(names))
    entry = header[name]
    kind = rng.choice(["shape", "dtype", "offsets", "delete", "extra", "reshape-same-size"])
    if kind == "shape" and entry["shape"]:
        i = int(rng.integers(len(entry["shape"])))
        entry["shape"][i] = rng.choice([entry["shape"][i] + 1, 2**62, -1, "3", 0, 2**32 - 1])
    elif kind == "dtype":
        size = {"F32": "I32", "I32": "F32", "F64": "I64", "I64": "F64", "U8": "I8"}.get(entry["dtype"], "F32")
        entry["dtype"] = str(rng.choice([size, "F16", "F64", "BOOL", "PICKLE", "U8"]))
    elif kind == "offsets":
        entry["data_offsets"][int(rng.integers(2))] += int(rng.choice([-4, 4, 2**40, -(2**40)]))
    elif kind == "delete":
        del header[name]
    elif kind == "extra":
        header[name + "x"] = dict(entry)
    elif entry["shape"]:
        total = 1
        for s in entry["shape"]:
            total *= s
        entry["shape"] = [total] if len(entry["shape"]) > 1 else [1, total]
    return "entry-" + kind


def _nodes(spec, found):
    if isinstance(spec, dict):
        if "type" in spec:
            found.append(spec)
        for value in spec.values():
            _nodes(value, found)
    elif isinstance(spec, list):
        for value in spec:
            _nodes(value, found)
    return found


def architecture(spec, rng):
    """Edit the module tree description in place (or return a replacement); returns
    ``(spec, kind)``."""
    nodes = _nodes(spec, [])
    node = nodes[int(rng.integers(len(nodes)))]
    kind = rng.choice(["type", "int-arg", "children-on-leaf", "deep", "deep-json", "ndarray", "drop-args",
                       "unknown-key", "child-kind"])  # fmt: skip
    if kind == "type":
        node["type"] = HOSTILE_TYPES[int(rng.integers(len(HOSTILE_TYPES)))]
    elif kind == "int-arg":
        args = node.get("args") or {}
        keys = [k for k, v in args.items() if isinstance(v, (int, list))]
        if keys:
            key = str(rng.choice(keys))
            value = HOSTILE_VALUES[int(rng.integers(len(HOSTILE_VALUES)))]
            if isinstance(args[key], list) and args[key]:
                args[key][int(rng.integers(len(args[key])))] = value
            else:
                args[key] = value
    elif kind == "children-on-leaf":
        node["children"] = [{"type": "ReLU", "args": {}}]
    elif kind == "deep":
        for _ in range(int(rng.choice([70, 300]))):
            spec = {"type": "Sequential", "args": {}, "children": [spec]}
    elif kind == "deep-json":
        node.setdefault("args", {})["x"] = DEEP  # replaced in the text by 5,000 nested lists (see dumps)
    elif kind == "ndarray":
        node.setdefault("args", {})[str(rng.choice(["dim", "table", "x"]))] = {
            "__ndarray__": [[1, 2], [[1], [2, 3]], 1][int(rng.integers(3))],
            "dtype": str(rng.choice(["S2000000000", "O", "U10", "complex64", "int64", "V8", "float32"])),
        }
    elif kind == "drop-args":
        node.pop("args", None)
    elif kind == "unknown-key":
        node["evil"] = {"__module__": {"type": "ReLU"}}
    else:
        node.setdefault("children", []).append({"type": str(rng.choice(["ClassNLLCriterion", "Criterion", "Linear"])),
                                                 "args": {}})  # fmt: skip
    return spec, "arch-" + kind


def sharing(shared: dict, names: list, rng):
    """Edit the alias table: wrong targets, self-aliases, stored names, non-strings."""
    kind = rng.choice(["retarget", "self", "stored", "missing", "non-string", "new-alias"])
    aliases = list(shared)
    if kind == "retarget" and aliases:
        shared[aliases[0]] = str(rng.choice(names))
    elif kind == "self" and aliases:
        shared[aliases[0]] = aliases[0]
    elif kind == "stored":
        shared[str(rng.choice(names))] = str(rng.choice(names))
    elif kind == "missing":
        shared["9.weight"] = str(rng.choice(names))
    elif kind == "non-string" and aliases:
        shared[aliases[0]] = 3
    else:
        shared[str(rng.choice(names))] = str(rng.choice(names))
    return "shared-" + kind


def values(header: dict, data: bytes, rng):
    """New bytes for one array's values (same size): a re-signed file loads them."""
    names = [k for k in header if k != "__metadata__" and header[k]["data_offsets"][1] > header[k]["data_offsets"][0]]
    if not names:
        return data, "values-none"
    begin, end = header[str(rng.choice(names))]["data_offsets"]
    data = bytearray(data)
    data[begin:end] = bytes(rng.integers(0, 256, end - begin, dtype="uint8"))
    return bytes(data), "values"
