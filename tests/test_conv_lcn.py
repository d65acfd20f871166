"""Local contrast normalization against a direct evaluation of Torch7's formulas (PyTorch
has no such module): loops over pixels, window taps and planes, in float64."""

import numpy as np
import pytest

from ember import image, nn


def direct_lcn(x, kernel, kind, threshold=1e-4, thresval=None, mean_floor=False):
    """Torch7's SpatialSubtractive/Divisive/ContrastiveNormalization, written out."""
    thresval = threshold if thresval is None else thresval
    k2 = np.outer(kernel, kernel) if kernel.ndim == 1 else kernel
    n, c, h, w = x.shape
    kh, kw = k2.shape
    weights = k2 / (k2.sum() * c)  # normalised over the window and all planes

    def local_sum(z):  # zero-padded, one map over all planes
        out = np.zeros((len(z), h, w))
        for y in range(h):
            for x_ in range(w):
                for p in range(kh):
                    for q in range(kw):
                        yy, xx = y + p - kh // 2, x_ + q - kw // 2
                        if 0 <= yy < h and 0 <= xx < w:
                            out[:, y, x_] += weights[p, q] * z[:, :, yy, xx].sum(axis=1)
        return out

    coef = local_sum(np.ones((1, c, h, w)))[0]  # kernel mass inside the image

    def subtractive(z):
        return z - (local_sum(z) / coef)[:, None]

    def divisive(z):
        sigma = np.sqrt(local_sum(z * z)) / coef  # coef divides sigma, not its square
        if mean_floor:
            sigma = np.maximum(sigma, sigma.mean(axis=(1, 2), keepdims=True))
        sigma = np.where(sigma > threshold, sigma, thresval)
        return z / sigma[:, None]

    return {"sub": subtractive, "div": divisive, "con": lambda z: divisive(subtractive(z))}[kind](x)


KERNELS = {"ones9": np.ones((9, 9)), "gauss1d7": image.gaussian1d(7), "gauss3x5": image.gaussian(width=5, height=3)}
MODULES = {"sub": nn.SpatialSubtractiveNormalization, "div": nn.SpatialDivisiveNormalization,
           "con": nn.SpatialContrastiveNormalization}  # fmt: skip


@pytest.mark.parametrize("kernel", KERNELS, ids=str)
@pytest.mark.parametrize("kind", MODULES, ids=str)
@pytest.mark.parametrize("mean_floor", [False, True])
def test_lcn_matches_the_formula(kind, kernel, mean_floor):
    if kind == "sub" and mean_floor:
        pytest.skip("no floor in the subtractive step")
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 7))
    args = {} if kind == "sub" else {"mean_floor": mean_floor}
    module = MODULES[kind](3, KERNELS[kernel], **args).to("numpy:float64")
    expected = direct_lcn(x, KERNELS[kernel], kind, mean_floor=mean_floor)
    np.testing.assert_allclose(module.forward(x), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(module.forward(x[1]), expected[1], rtol=1e-10, atol=1e-12)


def test_threshold_and_thresval_on_flat_regions():
    x = np.zeros((1, 2, 6, 6))
    x[0, :, :3] = np.random.default_rng(1).standard_normal((2, 3, 6))
    module = nn.SpatialDivisiveNormalization(2, np.ones(3), threshold=0.5, thresval=2.0).to("numpy:float64")
    np.testing.assert_allclose(module.forward(x), direct_lcn(x, np.ones(3), "div", 0.5, 2.0), rtol=1e-12, atol=1e-14)


def test_contrastive_output_statistics_in_the_interior():
    """After contrast normalization the local weighted mean is ~0 and the std ~1."""
    x = np.random.default_rng(2).standard_normal((1, 1, 32, 32)) * 5 + 3
    y = nn.SpatialContrastiveNormalization(1, np.ones((7, 7))).to("numpy:float64").forward(x)
    interior = y[0, 0, 8:-8, 8:-8]
    assert abs(interior.mean()) < 0.2 and 0.7 < interior.std() < 1.3
