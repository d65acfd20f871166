"""What is fuzzed: good base files, how each case is mutated, and the oracle that
classifies a load. ``make_case(rng)`` runs in the parent; ``check(path, case)`` runs in
the forked child and returns ``"loaded-exact"`` or ``"silent-wrong-load"`` (or raises)."""

from __future__ import annotations

import gzip
import inspect
import io as bytes_io
import json
import os
import tempfile
import zipfile

import numpy as np

import ember
from ember import models, nn
from ember.training import checkpoint
from ember.architecture import describe_architecture
from ember.data import read_idx
from ember.tensor_file import DIGEST_KEY

from . import mutate

WORK = tempfile.mkdtemp(prefix="ember-fuzz-")


def _decode(raw: bytes):
    """Independent reading of a safetensors-layout file: ``(tensors, metadata)``."""
    header, data = mutate.split(raw)
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        dtype = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I32": "<i4", "I64": "<i8", "U8": "u1", "I8": "i1",
                 "I16": "<i2", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}[e["dtype"]]  # fmt: skip
        a, b = e["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype=dtype).reshape(e["shape"])
    return tensors, meta


# ---------------------------------------------------------------- model files
def _model_bases():
    rng = np.random.default_rng(0)
    lin = nn.Linear(6, 6, rng=1)
    siamese = nn.Sequential(lin, nn.Tanh(), lin.clone("weight", "bias"), nn.LogSoftMax())
    lenet = nn.Sequential(nn.SpatialConvolution(1, 4, 3, 3, rng=rng), nn.ReLU(), nn.SpatialMaxPooling(2, 2),
                          nn.Reshape(4 * 3 * 3), nn.Linear(36, 5, rng=rng), nn.LogSoftMax())  # fmt: skip
    bn = nn.Sequential(nn.Linear(5, 4, rng=rng), nn.BatchNormalization(4), nn.ReLU(), nn.Linear(4, 3, rng=rng))
    bn.get(1).running_mean[...] = rng.standard_normal(4)
    inp = nn.Input()
    graph = nn.Graph([inp], [nn.Linear(3, 2, rng=2)(nn.Tanh()(inp))])
    bases = []
    for index, model in enumerate([siamese, lenet, bn, graph]):
        path = os.path.join(WORK, f"base{index}.st")
        ember.save(model, path, metadata={"note": "base"})
        with open(path, "rb") as handle:
            bases.append(handle.read())
    return bases


def make_model_case(bases, rng):
    raw = bases[int(rng.integers(len(bases)))]
    family = rng.choice(["bytes", "entry", "arch", "shared", "values", "meta"], p=[0.3, 0.15, 0.3, 0.1, 0.05, 0.1])
    if family == "bytes":
        new, kind = mutate.byte_level(raw, rng)
        return new, kind, False, raw
    header, data = mutate.split(raw)
    resign = bool(rng.random() < 0.6) or family == "values"
    meta = header["__metadata__"]
    if family == "entry":
        kind = mutate.tensor_entry(header, rng)
    elif family == "arch":
        spec, kind = mutate.architecture(json.loads(meta["architecture"]), rng)
        meta["architecture"] = mutate.dumps(spec)
    elif family == "shared":
        shared = json.loads(meta["shared"])
        kind = mutate.sharing(shared, [k for k in header if k != "__metadata__"], rng)
        meta["shared"] = json.dumps(shared)
    elif family == "values":
        data, kind = mutate.values(header, data, rng)
    else:
        kind = str(rng.choice(["no-digest", "no-format", "bad-architecture", "bad-shared"]))
        if kind == "no-digest":
            meta.pop(DIGEST_KEY)
        elif kind == "no-format":
            meta.pop("format")
        elif kind == "bad-architecture":
            meta["architecture"] = "{not json"
        else:
            meta["shared"] = "[1, 2]"
    return mutate.join(header, data, resign), kind, resign, raw


def _same_spec(stored, loaded) -> bool:
    """The loaded tree is what the stored description says: same types and arguments,
    where an argument the file leaves out took its constructor default."""
    if isinstance(stored, dict) and "type" in stored and isinstance(loaded, dict):
        if stored.get("type") != loaded.get("type"):
            return False
        cls = getattr(nn, loaded["type"], None)
        defaults = {}
        if cls is not None:
            params = inspect.signature(cls.__init__).parameters
            defaults = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
        args, got = stored.get("args", {}), loaded.get("args", {})
        if any(k not in got or not _same_spec(v, got[k]) for k, v in args.items()):
            return False
        if any(k not in args and json.loads(json.dumps(defaults.get(k, object()), default=str)) != v for k, v in got.items()):
            return False
        rest = (set(stored) | set(loaded)) - {"type", "args"}
        empty = ([], {})  # a container without "children" has none
        return all(_same_spec(stored.get(k, loaded.get(k) if loaded.get(k) in empty else None), loaded.get(k))
                   for k in rest)  # fmt: skip
    if isinstance(stored, list) and isinstance(loaded, list):
        return len(stored) == len(loaded) and all(_same_spec(a, b) for a, b in zip(stored, loaded))
    return stored == loaded


def check_model(path, raw_now, original, resigned):
    """Loaded: the module must hold exactly what the file says (and, unless the file was
    re-signed, exactly the original)."""
    model = ember.load(path)
    for raw in [raw_now] + ([] if resigned else [original]):
        tensors, meta = _decode(raw)
        tensors = {k: v for k, v in tensors.items() if not k.startswith("extra/")}
        shared = json.loads(meta.get("shared", "{}"))
        if not _same_spec(json.loads(meta["architecture"]), json.loads(json.dumps(describe_architecture(model)))):
            return "silent-wrong-load"
        named = dict(model.named_arrays())
        if set(named) != set(tensors) | set(shared):
            return "silent-wrong-load"
        for name, stored in tensors.items():
            slot = named[name]
            if slot.shape != stored.shape or (slot.dtype.kind == "f") != (stored.dtype.kind == "f"):
                return "silent-wrong-load"
            if not np.array_equal(slot, stored.astype(slot.dtype), equal_nan=True):
                return "silent-wrong-load"
        if any(named[a] is not named[c] for a, c in shared.items()):
            return "silent-wrong-load"
    return "loaded-exact"


# ---------------------------------------------------------------- checkpoints
class Training:
    """A tiny run (MLP, dropout, momentum or adam, a schedule) and its checkpoints."""

    def __init__(self):
        from ember.training import make_dataset

        rng = np.random.default_rng(0)
        x = rng.integers(0, 255, (80, 784), dtype=np.uint8)
        y = rng.integers(0, 4, 80)
        self.data = make_dataset("fuzz", x[:64], y[:64], x[64:], y[64:], (784,), preprocess="none")
        self.setups = [dict(optimizer="sgd", momentum=0.9, schedule="plateau:0.5:1", max_steps=6),
                       dict(optimizer="adam", schedule="step:1:0.5", epochs=1)]  # fmt: skip
        self.bases = []
        for index, setup in enumerate(self.setups):
            path = os.path.join(WORK, f"base{index}.ckpt")
            self.fit(path, setup)
            with open(path, "rb") as handle:
                self.bases.append(handle.read())

    def options(self, path, setup, **extra):
        from ember.training import TrainOptions

        kw = dict(epochs=2, batch_size=16, progress=False, checkpoint=path, seed=3, lr=0.05)
        kw.update(setup)
        kw.update(extra)
        return TrainOptions(**kw)

    def model(self):
        return models.build_model("mnist-mlp", rng=np.random.default_rng(0), hidden=8, n_classes=4, dropout=0.3)

    def fit(self, path, setup, **extra):
        from ember.training import fit

        with open(os.devnull, "w") as out:
            return fit(self.model(), nn.ClassNLLCriterion(), self.data, self.options(path, setup, **extra), out=out)


def make_checkpoint_case(training, rng):
    index = int(rng.integers(len(training.bases)))
    raw = training.bases[index]
    if rng.random() < 0.4:
        new, kind = mutate.byte_level(raw, rng)
        return new, kind, False, raw, index
    path = os.path.join(WORK, "base-edit.ckpt")
    with open(path, "wb") as handle:
        handle.write(raw)
    arrays, info = checkpoint.read_checkpoint(path)
    arrays = {k: v.copy() for k, v in arrays.items()}
    kind = _edit_checkpoint(arrays, info, rng)
    checkpoint.write_checkpoint(path, arrays, info)  # re-signed: both digests recomputed
    with open(path, "rb") as handle:
        return handle.read(), kind, True, raw, index


def _edit_checkpoint(arrays, info, rng):
    run = info["run"]
    kind = str(rng.choice(["run", "rng", "schedule", "optim-scalar", "params-dtype", "optim-shape", "order",
                           "drop-array", "extra-array", "options", "values", "history"]))  # fmt: skip
    hostile = mutate.HOSTILE_VALUES + [1e18, 10**18, run["step"] + 1, run["step"] - 1]
    if kind == "run":
        run[str(rng.choice(sorted(run)))] = hostile[int(rng.integers(len(hostile)))]
    elif kind == "rng":
        state = info["rng"][int(rng.integers(len(info["rng"])))]
        choice = int(rng.integers(4))
        if choice == 0:
            state["state"]["state"] = hostile[int(rng.integers(len(hostile)))]
        elif choice == 1:
            del state["state"]
        elif choice == 2:
            state["bit_generator"] = "MT19937"
        else:
            info["rng"] = info["rng"][:-1]
    elif kind == "schedule":
        if info["schedule"]:
            info["schedule"][str(rng.choice(sorted(info["schedule"])))] = hostile[int(rng.integers(len(hostile)))]
        else:
            info["schedule"]["lr"] = 1.0
    elif kind == "optim-scalar":
        if info["optim_scalars"]:
            info["optim_scalars"][str(rng.choice(sorted(info["optim_scalars"])))] = hostile[int(rng.integers(len(hostile)))]
        else:
            info["optim_scalars"]["evil"] = 1
    elif kind == "params-dtype":
        arrays["params"] = arrays["params"].view(str(rng.choice(["int32", "uint32"])))
    elif kind == "optim-shape":
        names = [k for k in arrays if k.startswith("optim/")] or ["params"]
        name = str(rng.choice(names))
        arrays[name] = arrays[name][:-1] if rng.random() < 0.5 else arrays[name].reshape(1, -1)
    elif kind == "order":
        if "order" in arrays:
            arrays["order"] = np.zeros_like(arrays["order"]) if rng.random() < 0.5 else arrays["order"].astype(np.float64)
        else:
            arrays["order"] = np.arange(64)[::-1].copy()
    elif kind == "drop-array":
        del arrays[str(rng.choice(sorted(arrays)))]
    elif kind == "extra-array":
        arrays["evil"] = np.zeros(3)
    elif kind == "options":
        info["options"]["batch_size"] = 17
    elif kind == "values":
        arrays["params"] = rng.standard_normal(arrays["params"].shape).astype(arrays["params"].dtype)
    else:
        run["history"] = ["x", [1], [{"a": "b"}], None][int(rng.integers(4))]
    return "ckpt-" + kind


def check_checkpoint(path, training, index, raw_now, original, resigned):
    """Resume into fresh objects; what was restored, written back, must equal the file
    (and, unless re-signed, the original); then one more training step must succeed or
    be refused with an ember error."""
    from ember.training.loop import TrainingRun
    from ember.training.run_state import load_training, save_training

    setup = training.setups[index]
    with open(os.devnull, "w") as out:
        tr = TrainingRun(training.model(), nn.ClassNLLCriterion(), training.data, training.options(path, setup), out, {})
        tr.run = run = load_training(path, tr)
        back = path + ".back"
        save_training(back, tr)
    arrays, info = checkpoint.read_checkpoint(back)
    for raw in [raw_now] + ([] if resigned else [original]):
        with open(back, "wb") as handle:
            handle.write(raw)
        want_arrays, want_info = checkpoint.read_checkpoint(back)
        if want_info != info or set(want_arrays) != set(arrays):
            return "silent-wrong-load"
        for name, array in arrays.items():
            same_dtype = name == "order" or array.dtype == want_arrays[name].dtype
            if not same_dtype or not np.array_equal(array, want_arrays[name]):
                return "silent-wrong-load"
    os.unlink(back)
    training.fit(path, setup, resume=True, max_steps=run.step + 1)  # the resumed run goes on
    return "loaded-exact"


# ---------------------------------------------------------------- IDX and npz
def _idx_bytes(array):
    code = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}[array.dtype.type]
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return bytes([0, 0, code, array.ndim]) + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


class DataBases:
    def __init__(self):
        rng = np.random.default_rng(1)
        self.images = rng.integers(0, 256, (20, 6, 6), dtype=np.uint8)
        self.labels = rng.integers(0, 4, 20).astype(np.uint8)
        self.raw_idx = _idx_bytes(self.images)
        self.gz_idx = gzip.compress(self.raw_idx)
        self.npz = {"x_train": rng.integers(0, 256, (30, 4, 4), dtype=np.uint8), "y_train": rng.integers(0, 4, 30),
                    "x_test": rng.integers(0, 256, (10, 4, 4), dtype=np.uint8), "y_test": rng.integers(0, 4, 10)}  # fmt: skip


def npz_bytes(arrays, compressed):
    buffer = bytes_io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def make_data_case(bases, rng):
    """``(bytes, kind, mode)``; mode: "idx" (plain read), "idx-digest", or "npz"."""
    target = str(rng.choice(["idx", "idx-digest", "npz"]))
    if target == "npz":
        arrays = dict(bases.npz)
        kind = str(rng.choice(["bytes", "count", "fraction", "2d", "complex", "string", "bool", "negative", "huge",
                               "one-based", "nan", "missing", "npy-header", "valid"]))  # fmt: skip
        if kind == "count":
            arrays["y_train"] = arrays["y_train"][:-3]
        elif kind == "fraction":
            arrays["y_train"] = arrays["y_train"] + 0.5
        elif kind == "2d":
            arrays["y_train"] = arrays["y_train"][:, None]
        elif kind in ("complex", "string", "bool"):
            arrays["x_train"] = arrays["x_train"].astype({"complex": np.complex64, "string": "S3", "bool": bool}[kind])
        elif kind == "negative":
            arrays["y_test"] = arrays["y_test"] - 2
        elif kind == "huge":
            arrays["y_train"] = arrays["y_train"] * 0 + 2**40
        elif kind == "one-based":
            arrays["y_train"], arrays["y_test"] = arrays["y_train"] % 3 + 1, arrays["y_test"] % 3 + 1
        elif kind == "nan":
            arrays["x_train"] = arrays["x_train"].astype(np.float32)
            arrays["x_train"][0, 0, 0] = np.nan
        elif kind == "missing":
            del arrays["x_test"]
        raw = npz_bytes(arrays, compressed=bool(rng.random() < 0.5))
        if kind == "bytes":
            raw = mutate.byte_level(raw, rng)[0]
        elif kind == "npy-header":
            raw = _edit_npy_header(arrays, rng)
        return raw, "npz-" + kind, target
    raw = bytearray(bases.raw_idx)
    kind = str(rng.choice(["bytes", "dims", "overflow", "type", "ndim", "bomb", "valid"]))
    if kind == "dims":
        i = int(rng.integers(3))
        raw[4 + 4 * i : 8 + 4 * i] = int(rng.integers(0, 2**32)).to_bytes(4, "big")
    elif kind == "overflow":
        raw[4:16] = (2**32 - 1).to_bytes(4, "big") * 3
    elif kind == "type":
        raw[2] = int(rng.choice([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07]))
    elif kind == "ndim":
        raw[3] = int(rng.integers(0, 256))
    elif kind == "bomb":  # announces 64 GB, compresses to almost nothing
        raw[4:8] = (2**31).to_bytes(4, "big")
        raw[8:16] = (2**5).to_bytes(4, "big") * 2
    raw = bytes(raw)
    if rng.random() < 0.6:
        raw = gzip.compress(raw)
    if kind == "bytes":
        raw = mutate.byte_level(raw, rng)[0]
    return raw, "idx-" + kind, target


def _edit_npy_header(arrays, rng):
    buffer = bytes_io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, array in arrays.items():
            member = bytes_io.BytesIO()
            np.save(member, array)
            blob = member.getvalue()
            if name == "x_train":
                blob = blob.replace(b"(30, 4, 4)", str(rng.choice(["(31, 4, 4)", "(2**40, 4)", "(30, 16)", "(-1, 4)"])).encode())
            archive.writestr(name + ".npy", blob)
    return buffer.getvalue()


def check_data(path, bases, mode):
    """Loaded: equal to an independent decode (IDX) or to ``numpy.load`` (npz), and the
    dataset invariants hold; the digest mode must load the original exactly."""
    if mode == "npz":
        from ember.training import load_dataset

        data = load_dataset((16,), data_file=path, preprocess="none")
        with np.load(path, allow_pickle=False) as archive:
            want = {k: archive[k] for k in archive.files}
        for split in ("train", "test"):
            x, y = getattr(data, "x_" + split), getattr(data, "y_" + split)
            wx, wy = want["x_" + split], want["y_" + split]
            if x.shape[0] != len(y) or not np.array_equal(x, wx.reshape(len(wx), -1).astype(np.float32)):
                return "silent-wrong-load"
            if wy.ndim != 1 or not np.array_equal(y, wy) or y.min() < 0 or y.max() >= data.n_classes:
                return "silent-wrong-load"
        return "loaded-exact"
    if mode == "idx-digest":
        import hashlib

        array = read_idx(path, (hashlib.sha256(bases.raw_idx).hexdigest(),), len(bases.raw_idx))
        return "loaded-exact" if np.array_equal(array, bases.images) else "silent-wrong-load"
    array = read_idx(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype({0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[raw[2]])
    want = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)
    same = array.shape == want.shape and np.array_equal(array, want, equal_nan=dtype.kind == "f")
    return "loaded-exact" if same else "silent-wrong-load"
