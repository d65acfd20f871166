"""A tiny writer of Torch7's serialization for tests (from the documented layout, see
ember/t7/reader.py): builds files the real models do not cover -- ascii, 4-byte longs,
cycles, shared storages, functions -- and hostile ones for the fuzzer."""

from __future__ import annotations

import struct

import numpy as np

ELEMENT = {"Double": "<f8", "Float": "<f4", "Cuda": "<f4", "Long": "long", "Int": "<i4", "Byte": "u1"}


class Obj:
    """A torch object to write: class name, fields (a dict) and version."""

    def __init__(self, class_name, fields, version=1):
        self.class_name, self.fields, self.version = class_name, fields, version


class Function:
    """A Lua function record: bytecode bytes and an upvalue table."""

    def __init__(self, bytecode=b"\x1bLuaQ fake", upvalues=None):
        self.bytecode, self.upvalues = bytecode, upvalues or {}


class Tensor:
    """A tensor of ``kind`` (Double, Float, Cuda ...) viewing ``storage`` (shared if reused)."""

    def __init__(self, kind, array, storage=None, offset=0):
        self.kind, self.array = kind, np.asarray(array)
        self.storage = storage if storage is not None else Storage(kind, self.array.reshape(-1))
        self.offset = offset


class Storage:
    """A storage of ``kind`` holding the 1-D ``data``."""

    def __init__(self, kind, data):
        self.kind, self.data = kind, np.asarray(data).reshape(-1)


class Writer:
    """Serialize Python values like ``torch.save`` (binary or ascii; ``long_size`` 8 or 4)."""

    def __init__(self, ascii=False, long_size=8):
        self.ascii, self.long_size, self.parts, self.refs = ascii, long_size, [], {}

    def bytes(self):
        return b"".join(self.parts)

    def ints(self, *values, long=False):
        if self.ascii:
            self.parts.append((" ".join(str(int(v)) for v in values) + "\n").encode() if values else b"")
        else:
            fmt = ("q" if self.long_size == 8 else "i") if long else "i"
            self.parts.append(struct.pack(f"<{len(values)}{fmt}", *values))

    def chars(self, data: bytes):
        self.parts.append(data + (b"\n" if self.ascii else b""))

    def string(self, text):
        data = text.encode() if isinstance(text, str) else text
        self.ints(len(data))
        self.chars(data)

    def numbers(self, array, dtype):
        if dtype == "long":
            dtype = "<i8" if self.long_size == 8 else "<i4"
        array = np.asarray(array).astype(dtype)
        if self.ascii and array.dtype.itemsize > 1:
            self.parts.append((" ".join(repr(v.item()) for v in array) + "\n").encode() if array.size else b"")
        elif self.ascii:
            self.chars(array.tobytes())
        else:
            self.parts.append(array.tobytes())

    def ref(self, value):
        """Write the reference index; True if the object was written before."""
        known = id(value) in self.refs
        if not known:
            self.refs[id(value)] = (len(self.refs) + 1, value)
        self.ints(self.refs[id(value)][0])
        return known

    def write(self, value):
        if value is None:
            self.ints(0)
        elif isinstance(value, bool):
            self.ints(5)
            self.ints(int(value))
        elif isinstance(value, (int, float)):
            self.ints(1)
            if self.ascii:
                self.parts.append(f"{float(value)!r}\n".encode())
            else:
                self.parts.append(struct.pack("<d", float(value)))
        elif isinstance(value, str):
            self.ints(2)
            self.string(value)
        elif isinstance(value, dict):
            self.ints(3)
            if not self.ref(value):
                self.ints(len(value))
                for k, v in value.items():
                    self.write(k)
                    self.write(v)
        elif isinstance(value, Function):
            self.ints(8)
            if not self.ref(value):
                self.string(value.bytecode)
                self.write(value.upvalues)
        elif isinstance(value, (Obj, Tensor, Storage, np.ndarray)):
            if isinstance(value, np.ndarray):
                value = Tensor("Double" if value.dtype == np.float64 else "Float", value)
            self.ints(4)
            if self.ref(value):
                return
            self.string(f"V {getattr(value, 'version', 1)}")
            if isinstance(value, Obj):
                self.string(value.class_name)
                self.write(value.fields)
            elif isinstance(value, Storage):
                self.string(f"torch.{value.kind}Storage")
                self.ints(len(value.data), long=True)
                self.numbers(value.data, ELEMENT[value.kind])
            else:
                self.string(f"torch.{value.kind}Tensor")
                shape = value.array.shape
                strides = [int(np.prod(shape[i + 1 :])) for i in range(len(shape))]
                self.ints(len(shape))
                self.ints(*shape, long=True)
                self.ints(*strides, long=True)
                self.ints(value.offset + 1, long=True)
                self.write(value.storage)
        else:
            raise TypeError(type(value))
        return self


def dumps(value, ascii=False, long_size=8) -> bytes:
    """The bytes ``torch.save`` would write for ``value`` (in this test writer's model)."""
    writer = Writer(ascii, long_size)
    writer.write(value)
    return writer.bytes()


def sample_mlp(kind="Float", shared=False):
    """Sequential(Linear(4, 3), Tanh, Dropout, ConcatTable(Linear(3, 3))) with a Lua function
    field; ``shared``: the second Linear re-uses the first one's weight tensor."""
    w1 = Tensor(kind, np.arange(12, dtype="float64").reshape(3, 4) / 10)
    lin1 = Obj("nn.Linear", {"weight": w1, "bias": Tensor(kind, np.ones(3)), "gradWeight": Tensor(kind, np.zeros((3, 4)))})
    w2 = w1 if shared else Tensor(kind, -np.ones((3, 3)))
    lin2 = Obj("nn.Linear", {"weight": w2, "bias": Tensor(kind, np.zeros(3))})
    return Obj("nn.Sequential", {"modules": {1: lin1, 2: Obj("nn.Tanh", {"train": True}), 3: Obj("nn.Dropout", {"p": 0.2, "v2": True}), 4: Obj("nn.ConcatTable", {"modules": {1: lin2}})}, "fn": Function()})  # fmt: skip
