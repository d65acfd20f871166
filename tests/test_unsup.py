"""ember.unsup and optim.fista: what the gradient cases cannot see (optimality, learning, errors)."""

import numpy as np
import pytest

from ember import nn, optim, unsup
from ember.errors import ShapeError

F64 = "numpy:float64"


def _lasso(rng, n=5, d=8, k=12, lambd=0.1):
    dictionary = rng.standard_normal((d, k))
    dictionary /= np.linalg.norm(dictionary, axis=0)
    x = rng.standard_normal((n, d))

    def f(z, need_grad):
        r = z @ dictionary.T - x
        value = 0.5 * float(np.vdot(r, r))
        return (value, r @ dictionary) if need_grad else value

    g = lambda z: lambd * float(np.abs(z).sum())  # noqa: E731
    pl = lambda z, L: optim.soft_threshold(z, lambd / L, out=z)  # noqa: E731
    return dictionary, x, f, g, pl


def _kkt_violation(dictionary, x, z, lambd):
    """max over units of how far z is from the lasso optimality conditions."""
    corr = (x - z @ dictionary.T) @ dictionary  # must be lambd sign(z) on the support, |.| <= lambd off it
    on = z != 0
    return max(float(np.abs(corr[on] - lambd * np.sign(z[on])).max(initial=0)),
               float((np.abs(corr[~on]) - lambd).max(initial=0)))  # fmt: skip


def test_soft_threshold():
    x = np.array([-2.0, -0.5, 0.0, 0.3, 1.5])
    np.testing.assert_allclose(optim.soft_threshold(x, 0.5), [-1.5, 0, 0, 0, 1.0])
    np.testing.assert_allclose(optim.soft_threshold(x, np.array([1, 0, 0, 0, 1.0])), [-1, -0.5, 0, 0.3, 0.5])


def test_fista_reaches_the_lasso_optimum_and_beats_ista():
    dictionary, x, f, g, pl = _lasso(np.random.default_rng(0))
    L = float(np.linalg.norm(dictionary, 2)) ** 2
    z, history = optim.fista(f, g, pl, np.zeros((5, 12)), {"L": L, "max_iter": 5000, "err_thres": 1e-12})
    assert _kkt_violation(dictionary, x, z, 0.1) < 1e-8
    assert history["iterations"] < 5000
    # after 30 iterations from 0, FISTA's energy is below ISTA's (both above the optimum)
    config = {"L": L, "max_iter": 30, "err_thres": 0.0}
    zf, hf = optim.fista(f, g, pl, np.zeros((5, 12)), config, {})
    zi, hi = optim.ista(f, g, pl, np.zeros((5, 12)), config, {})
    best = f(z, False) + g(z)
    assert best <= hf["energy"][-1] < hi["energy"][-1]
    # the energy never increases along ISTA (a descent method)
    assert all(b <= a + 1e-12 for a, b in zip(hi["energy"], hi["energy"][1:]))


def test_the_line_search_grows_L_and_writes_it_back():
    _, _, f, g, pl = _lasso(np.random.default_rng(1))
    state = {}
    z, history = optim.fista(f, g, pl, np.zeros((5, 12)), {"L": 1e-3, "max_iter": 200}, state)
    assert history["line_steps"] > 0 and state["L"] == history["L"] > 1e-3
    assert np.isfinite(z).all()
    # the next call starts from the L written back: no more growth needed
    _, again = optim.fista(f, g, pl, np.zeros((5, 12)), {"L": 1e-3, "max_iter": 5}, state)
    assert again["line_steps"] == 0


@pytest.mark.parametrize("config, match", [({"max_iter": 0}, "max_iter"), ({"L": -1.0}, "L must be"),
                                           ({"step": 1}, "unknown hyperparameter")])  # fmt: skip
def test_fista_refuses_bad_settings(config, match):
    _, _, f, g, pl = _lasso(np.random.default_rng(2))
    with pytest.raises(ValueError, match=match):
        optim.fista(f, g, pl, np.zeros((5, 12)), config)


def test_fista_l1_codes_are_optimal_and_learning_lowers_the_energy():
    rng = np.random.default_rng(3)
    true = rng.standard_normal((16, 24))
    true /= np.linalg.norm(true, axis=0)
    codes = rng.standard_normal((400, 24)) * (rng.random((400, 24)) < 0.1)
    x = codes @ true.T
    model = unsup.FistaL1(16, 24, lambd=0.05, max_iter=5000, err_thres=1e-11, rng=rng).to(F64)
    z = model.infer(x[:20]).copy()
    assert _kkt_violation(model.dictionary, x[:20], z, 0.05) < 1e-5
    model.fista_config.update(max_iter=200, err_thres=1e-6)  # learning needs no exact codes
    before = float(model.forward(x).mean())
    for _ in range(5):
        for start in range(0, 400, 50):
            model.fit_batch(x[start : start + 50], 0.5)
    np.testing.assert_allclose(np.linalg.norm(model.dictionary, axis=0), 1.0, rtol=1e-9)  # unit-norm atoms
    assert float(model.forward(x).mean()) < 0.8 * before


def test_psd_encoder_learns_to_predict_the_codes():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 10))
    psd = unsup.PSD(10, 12, lambd=0.1, alpha=1.0, rng=rng).to(F64)
    error = lambda: np.linalg.norm(psd.encode(x) - psd.infer(x)) / np.linalg.norm(psd.code)  # noqa: E731
    start = error()
    for _ in range(30):
        for i in range(0, 300, 50):
            psd.fit_batch(x[i : i + 50], 1.0)
    assert error() < 0.7 * start
    assert psd.encode(x).shape == (300, 12)


def test_conv_models_shapes_and_lipschitz_bound():
    rng = np.random.default_rng(5)
    psd = unsup.ConvPSD(1, 3, 3, 3, lambd=0.1, max_iter=20, rng=rng).to(F64)
    x = rng.standard_normal((2, 1, 9, 8))
    assert psd.forward(x).shape == (2,)
    assert psd.code.shape == psd.encode(x).shape == (2, 3, 7, 6)
    np.testing.assert_allclose(np.sqrt((psd.dictionary**2).sum(axis=(1, 2, 3))), 1.0, rtol=1e-6)  # normalized in float32
    # the Fourier estimate bounds ||D||^2 on this image size (power iteration on D^T D)
    z = rng.standard_normal((1, 3, 7, 6))
    for _ in range(100):
        z = psd.decoder.update_grad_input(z, psd.decoder.update_output(z).copy()).copy()
        z /= np.linalg.norm(z)
    top = float(np.linalg.norm(psd.decoder.update_output(z))) ** 2
    assert top <= unsup.conv_lipschitz(psd.dictionary, np) <= 1.2 * top + 1e-9


def test_lista_initialised_from_a_dictionary_is_ista():
    dictionary, x, f, g, pl = _lasso(np.random.default_rng(6))
    L = float(np.linalg.norm(dictionary, 2)) ** 2
    for steps in (1, 4):
        z, _ = optim.ista(f, g, pl, np.zeros((5, 12)), {"L": L, "max_iter": steps, "err_thres": 0.0}, {})
        for tied in (True, False):
            lista = unsup.LISTA(8, 12, n_steps=steps, tied=tied).to(F64).init_from_dictionary(dictionary, 0.1)
            np.testing.assert_allclose(lista.forward(x), z, rtol=1e-12, atol=1e-14)


def test_lista_training_beats_the_same_number_of_ista_steps():
    rng = np.random.default_rng(7)
    dictionary, _, _, _, _ = _lasso(rng)
    x = rng.standard_normal((500, 8))
    exact = unsup.FistaL1(8, 12, lambd=0.1, max_iter=2000, err_thres=1e-10).to(F64)
    exact.decoder.weight[...] = dictionary
    z_star = exact.infer(x).copy()
    lista = unsup.LISTA(8, 12, n_steps=2).to(F64).init_from_dictionary(dictionary, 0.1)
    before = np.linalg.norm(lista.forward(x) - z_star)
    params, grads = lista.get_parameters()
    mse, state = nn.MSECriterion().to(F64), {}
    for _ in range(20):
        for i in range(0, 500, 50):
            def feval(_, xb=x[i : i + 50], zb=z_star[i : i + 50]):
                lista.zero_grad_parameters()
                loss = mse.forward(lista.forward(xb), zb)
                lista.backward(xb, mse.backward(lista.output, zb))
                return loss, grads

            optim.adam(feval, params, {"learning_rate": 3e-3}, state)
    assert np.linalg.norm(lista.forward(x) - z_star) < 0.7 * before


def test_denoising_auto_encoder_is_deterministic_when_evaluating():
    ae = unsup.AutoEncoder(6, 4, noise=0.5, rng=0).to(F64)
    x = np.random.default_rng(8).standard_normal((4, 6))
    noisy = ae.forward(x).copy()
    ae.evaluate()
    clean = ae.forward(x).copy()
    np.testing.assert_allclose(ae.forward(x), clean)
    assert not np.allclose(noisy, clean)
    np.testing.assert_allclose(clean, np.tanh(x @ ae.weight.T + ae.bias) @ ae.weight + ae.decoder_bias)


def test_float32_models_run():
    x = np.random.default_rng(9).standard_normal((4, 6)).astype(np.float32)
    for model in (unsup.FistaL1(6, 8, rng=0), unsup.PSD(6, 8, rng=0), unsup.LISTA(6, 8, rng=0), unsup.AutoEncoder(6, 3, rng=0)):
        out = model.forward(x)
        assert out.dtype == np.float32 and np.isfinite(out).all()


def test_clear_errors():
    x = np.zeros((3, 5))
    with pytest.raises(ShapeError, match=r"FistaL1\(6 -> 4.*expected input \(N, 6\)"):
        unsup.FistaL1(6, 4).to(F64).forward(x)
    with pytest.raises(ShapeError, match="SpatialConvFistaL1"):
        unsup.SpatialConvFistaL1(1, 2, 3, 3).to(F64).forward(np.zeros((1, 1, 2, 5)))
    with pytest.raises(ValueError, match="lambd"):
        unsup.FistaL1(6, 4, lambd=-1)
    with pytest.raises(ValueError, match="alpha"):
        unsup.PSD(6, 4, alpha=0)
    with pytest.raises(ValueError, match="noise"):
        unsup.AutoEncoder(6, 4, noise=1.0)
    with pytest.raises(ShapeError, match="takes no target"):
        unsup.L1Cost().to(F64).forward(x, x)
    with pytest.raises(ShapeError, match="Diag"):
        unsup.Diag(4).to(F64).forward(x)
    with pytest.raises(ValueError, match="dictionary must be"):
        unsup.LISTA(6, 4).to(F64).init_from_dictionary(np.zeros((4, 6)), 0.1)
    with pytest.raises(TypeError, match="tied"):
        unsup.LISTA(6, 4, tied="no")
    model = unsup.FistaL1(5, 4).to(F64)
    model.forward(x)
    with pytest.raises(ShapeError, match="one dE/dE_n per sample"):
        model.backward(x, np.ones((3, 4)))


@pytest.mark.parametrize("tied", [True, False])
def test_lista_warm_forward_and_backward_allocate_no_arrays(tied):
    from allocation import allocations

    model = unsup.LISTA(64, 128, n_steps=3, rng=np.random.default_rng(0), tied=tied)
    x = np.random.default_rng(1).standard_normal((256, 64)).astype(np.float32)
    grad = np.ones((256, 128), np.float32)

    def step():
        model.forward(x)
        model.backward(x, grad)

    step()  # warm: the buffers exist from now on
    peak, retained = allocations(step)
    # one (256, 128) float32 array is 128 KB; what is left is NumPy's buffers for the
    # comparison written as floats (~40 KB) and small Python objects
    assert peak < 64 * 1024 and retained < 4096, f"a warm LISTA step allocated up to {peak} bytes ({retained} kept)"
