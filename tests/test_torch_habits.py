"""PyTorch habits on ember modules, and ember.interop against real PyTorch modules."""

import numpy as np
import pytest

import ember
from ember import interop, nn
from ember.errors import ShapeError


def small_net():
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Dropout(0.5), nn.Linear(5, 3), nn.LogSoftMax())


def test_train_is_torch7s_field_and_pytorchs_switch():
    net = small_net()
    assert net.train and all(m.train for m in net.modules())
    assert net.train(False) is net and not any(m.train for m in net.modules())  # PyTorch: train(False) = eval
    assert net.train() is net and all(m.train for m in net.modules())
    assert net.eval() is net and not any(m.train for m in net.modules())
    net.modules()[3].train = True  # Torch7: assign the field
    assert net.modules()[3].train and repr(net.modules()[3].train) == "True" and not net.modules()[2].train
    net.training()
    x = np.ones((4, 6), np.float32)
    dropped = net.forward(x).copy()
    np.testing.assert_array_equal(net.eval().forward(x), net.forward(x))  # evaluation: deterministic
    assert dropped.shape == (4, 3)


def test_parameters_pair_explains_itself_to_a_pytorch_loop():
    net = small_net()
    params, grads = net.parameters()  # Torch7: the pair
    assert [p.shape for p in params] == [(5, 6), (5,), (3, 5), (3,)] and len(grads) == 4
    with pytest.raises(AttributeError, match=r"parameters\(\)\[0\]"):
        sum(p.size for p in net.parameters())  # PyTorch: one parameter at a time


def test_named_parameters_state_dict_and_load_state_dict():
    net, other = small_net(), small_net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["0.weight", "0.bias", "3.weight", "3.bias"] == list(net.state_dict())
    flat, _ = other.get_parameters()
    result = other.load_state_dict(net.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    np.testing.assert_array_equal(flat, net.get_parameters()[0])  # copied in place: the flat vector follows
    x = np.random.default_rng(0).normal(size=(2, 6)).astype(np.float32)
    np.testing.assert_array_equal(other.eval().forward(x), net.eval().forward(x))
    with pytest.raises(KeyError, match="unexpected keys"):
        other.load_state_dict({**net.state_dict(), "9.weight": np.zeros(1)})
    assert other.load_state_dict({"0.bias": np.zeros(5)}, strict=False).missing_keys[0] == "0.weight"
    with pytest.raises(ShapeError, match="0.bias has shape"):
        other.load_state_dict({**net.state_dict(), "0.bias": np.zeros(4)})


def test_zero_grad_is_zero_grad_parameters():
    net = small_net()
    net.parameters()[1][0][...] = 1
    net.zero_grad()
    assert all(not g.any() for g in net.parameters()[1])


torch = pytest.importorskip("torch")


def test_torch_tensors_are_refused_in_one_line_naming_the_fix():
    net = small_net()
    with pytest.raises(ShapeError, match=r"torch.Tensor .*t.numpy\(\)"):
        net.forward(torch.zeros(2, 6))
    out = net.forward(np.zeros((2, 6), np.float32))
    with pytest.raises(ShapeError, match=r"torch.Tensor"):
        nn.MSECriterion().forward(out, torch.zeros(2, 3))
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    np.testing.assert_array_equal(interop.to_numpy(tensor), tensor.numpy())


def torch_twin():
    """The PyTorch network with the same layers as the ember one below (fresh weights)."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(36, 10), torch.nn.LogSoftmax(dim=1),
    )  # fmt: skip


def test_state_dict_round_trip_with_pytorch_modules():
    ember.manual_seed(0)
    net = nn.Sequential(
        nn.SpatialConvolution(1, 4, 3, 3), nn.SpatialBatchNormalization(4), nn.ReLU(), nn.SpatialMaxPooling(2, 2),
        nn.Reshape(4 * 3 * 3), nn.Linear(36, 10), nn.LogSoftMax(),
    )  # fmt: skip
    ref = torch_twin()
    x = np.random.default_rng(1).normal(size=(5, 1, 8, 8)).astype(np.float32)
    net.forward(x)  # training mode: the running statistics move away from their start
    ref.load_state_dict(interop.to_torch(net))  # strict: every PyTorch key is there
    ref.eval()
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net.eval().forward(x), expected, rtol=1e-5, atol=1e-5)
    # and back: PyTorch's own initialisation loaded into a fresh ember net
    fresh_ref = torch_twin().eval()
    other = ember.io.build(ember.io.describe_architecture(net))
    interop.load_torch(other, fresh_ref.state_dict())
    with torch.no_grad():
        expected = fresh_ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(other.eval().forward(x), expected, rtol=1e-5, atol=1e-5)


def test_model_file_keys_load_into_pytorch_strictly(tmp_path):
    net = nn.Sequential(nn.Linear(4, 3), nn.LogSoftMax())
    path = tmp_path / "m.safetensors"
    ember.save(net, path)
    ref = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LogSoftmax(dim=1))
    ref.load_state_dict(interop.torch_state_dict_from_file(path))
    np.testing.assert_array_equal(ref[0].weight.detach().numpy(), net.modules()[1].weight)
