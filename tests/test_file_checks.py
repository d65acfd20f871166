"""Issue 13's file cases, one test each: model files carry and verify a digest; a
re-signed (digest recomputed) file that is inconsistent is still refused -- aliases of
the wrong shape, integer arrays for float parameters, bad constructor arguments,
abstract or misplaced classes, deep nesting, arguments that would allocate gigabytes --
always with a FormatError naming the file and the entry."""

import json
import tracemalloc

import numpy as np
import pytest

import ember
from ember import io, nn
from ember.errors import FormatError
from ember.tensor_file import DIGEST_KEY, header_digest


def lenet():
    rng = np.random.default_rng(0)
    return nn.Sequential(nn.SpatialConvolution(1, 4, 5, 5, rng=rng), nn.Tanh(), nn.SpatialMaxPooling(2, 2),
                         nn.Reshape(4 * 4 * 4), nn.Linear(64, 10, rng=rng), nn.LogSoftMax())  # fmt: skip


def siamese():
    first = nn.Linear(6, 6, rng=1)
    return nn.Sequential(first, nn.Tanh(), first.clone("weight", "bias"), nn.LogSoftMax())


def edited(tmp_path, edit, model=None, resign=True):
    """Save ``model``, apply ``edit(header, metadata)`` to its JSON header, re-sign it."""
    path = tmp_path / "m.st"
    ember.save(model or lenet(), path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header, data = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    meta = header["__metadata__"]
    arch, shared = json.loads(meta["architecture"]), json.loads(meta["shared"])
    edit(header, arch, shared)
    meta["architecture"], meta["shared"] = json.dumps(arch), json.dumps(shared)
    if resign:
        meta[DIGEST_KEY] = header_digest(header, data)
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + data)
    return path


def test_a_flipped_weight_byte_is_caught_by_the_digest(tmp_path):
    path = tmp_path / "m.st"
    ember.save(lenet(), path)
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x01  # inside the last array's values: every shape and offset still fits
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match=r"m\.st: digest mismatch"):
        ember.load(path)


def test_files_without_a_digest_still_load_but_say_so(tmp_path):
    def drop(header, arch, shared):
        header["__metadata__"].pop(DIGEST_KEY)

    path = edited(tmp_path, drop, resign=False)
    model, meta = ember.load(path, with_metadata=True)
    assert not io.is_verified(meta)
    assert io.is_verified(ember.load(edited(tmp_path, lambda *a: None), with_metadata=True)[1])
    x = np.random.default_rng(1).standard_normal((2, 1, 12, 12)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), lenet().forward(x))


def test_the_safetensors_package_reads_ember_files(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    net = lenet()
    path = tmp_path / "m.st"
    ember.save(net, path)
    tensors = st.load_file(str(path))
    np.testing.assert_array_equal(tensors["0.weight"], net.get(0).weight)
    with safe_open(str(path), framework="numpy") as handle:
        assert len(handle.metadata()[DIGEST_KEY]) == 64


@pytest.mark.parametrize("case, message", [
    ("alias-shape", r"sharing entry '2\.weight' -> '0\.bias': shape \(6, 6\) float32 cannot share \(6,\)"),
    ("int32-weight", r"4\.weight is stored as int32, the architecture needs float32"),
    ("dim-string", r"entry 5 \(LogSoftMax\): .*dim"),
    ("bias-minus-one", r"entry 4 \(Linear\): argument bias = '-1'"),
    ("kh-2**63", r"entry 2 \(SpatialMaxPooling\): integer argument .* out of range"),
    ("module-as-layer", r"entry 1: Module is an abstract base class"),
    ("container-as-layer", r"entry 1: Container is an abstract base class"),
    ("criterion-as-layer", r"entry 1: ClassNLLCriterion where a layer belongs"),
    ("children-on-leaf", r"entry 1 \(Tanh\): Tanh is not a container"),
    ("deep-nesting", r"nested deeper than 64 levels"),
    ("huge-linear", r"entry 4 \(Linear\): arguments ask for about 4e\+08 elements"),
    ("string-array", r"array arguments must be numeric, not \|S2000000000"),
])  # fmt: skip
def test_re_signed_but_inconsistent_files_are_refused(tmp_path, case, message):
    def edit(header, arch, shared):
        layers = arch["children"]
        if case == "alias-shape":
            shared["2.weight"] = "0.bias"
        elif case == "int32-weight":
            header["4.weight"]["dtype"] = "I32"
        elif case == "dim-string":
            layers[5]["args"]["dim"] = "1"
        elif case == "bias-minus-one":
            layers[4]["args"]["bias"] = -1
        elif case == "kh-2**63":
            layers[2]["args"]["kh"] = 2**63
        elif case in ("module-as-layer", "container-as-layer", "criterion-as-layer"):
            layers[1]["type"] = {"module": "Module", "container": "Container", "criterion": "ClassNLLCriterion"}[case.split("-")[0]]
        elif case == "children-on-leaf":
            layers[1]["children"] = [{"type": "ReLU", "args": {}}]
        elif case == "deep-nesting":
            node = layers[1]
            for _ in range(100):
                node = {"type": "Sequential", "args": {}, "children": [node]}
            layers[1] = node
        elif case == "huge-linear":
            layers[4]["args"].update(in_features=20000, out_features=20000)
        else:
            layers[1]["args"]["x"] = {"__ndarray__": ["a"], "dtype": "S2000000000"}

    path = edited(tmp_path, edit, siamese() if case == "alias-shape" else None)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=r"m\.st: .*" + message):
            ember.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


def test_deep_json_is_refused_not_a_recursion_error(tmp_path):
    path = edited(tmp_path, lambda *a: None)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"]["architecture"] = "[" * 100000 + "]" * 100000
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + raw[8 + n :])
    with pytest.raises(FormatError, match="nested too deeply|digest mismatch"):
        ember.load(path)


def test_a_huge_recurrent_layer_in_a_small_file_is_refused_before_allocating(tmp_path):
    path = tmp_path / "m.st"
    ember.save(nn.Sequential(nn.LSTM(3, 4, rng=0)), path)
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header, data = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    arch = json.loads(header["__metadata__"]["architecture"])
    arch["children"][0]["args"].update(input_size=20000, hidden_size=20000)
    header["__metadata__"]["architecture"] = json.dumps(arch)
    header["__metadata__"][DIGEST_KEY] = header_digest(header, data)
    blob = json.dumps(header).encode()
    path.write_bytes(len(blob).to_bytes(8, "little") + blob + data)
    with pytest.raises(FormatError, match=r"entry 0 \(LSTM\): arguments ask for about"):
        ember.load(path)


@pytest.mark.parametrize("where", ["key", "arg"])
def test_what_a_graph_description_would_drop_is_refused(tmp_path, where):
    inp = nn.Input()
    graph = nn.Graph([inp], [nn.Linear(3, 2, rng=0)(nn.Tanh()(inp))])

    def edit(header, arch, shared):
        if where == "key":
            arch["evil"] = {"__module__": {"type": "ReLU"}}
        else:
            arch["args"]["x"] = 1

    with pytest.raises(FormatError, match=r"<root> \(Graph\): unexpected keys"):
        ember.load(edited(tmp_path, edit, graph))
