"""Cases for the convolutional-network modules (see cases.py).

PyTorch is the oracle wherever it has the same function; the contrast normalizations
(absent from PyTorch) are checked against a direct NumPy evaluation in test_conv_lcn.py.
"""

from __future__ import annotations

import numpy as np
from cases import Case, normal, reseed, torch_params

from ember import image, nn


def _conv_torch(stride=(1, 1), padding=(0, 0), dilation=(1, 1)):
    def build(m, torch):
        w, b = torch_params(torch, m.weight, m.bias)
        F = torch.nn.functional

        def fn(x):
            x4 = x if x.ndim == 4 else x[None]
            y = F.conv2d(x4, w, b, stride=stride, padding=padding, dilation=dilation)
            return y if x.ndim == 4 else y[0]

        return fn, [(m.weight, w), (m.bias, b)]

    return build


def _full_torch(stride, padding, adj):
    def build(m, torch):
        w, b = torch_params(torch, m.weight, m.bias)
        return (lambda x: torch.nn.functional.conv_transpose2d(x, w, b, stride=stride, padding=padding,
                                                               output_padding=adj)), [(m.weight, w), (m.bias, b)]  # fmt: skip

    return build


def _map_torch(m, torch):
    w, b = torch_params(torch, m.weight, m.bias)
    table = torch.tensor(m.conn_table)

    def fn(x):
        dense = torch.zeros((m.n_output_plane, m.n_input_plane, m.kh, m.kw), dtype=torch.float64)
        dense = dense.index_put((table[:, 1], table[:, 0]), w)
        return torch.nn.functional.conv2d(x, dense, b, stride=(m.dh, m.dw))

    return fn, [(m.weight, w), (m.bias, b)]


def _temporal_torch(m, torch):
    w, b = torch_params(torch, m.weight, m.bias)
    k, f_in = m.kw, m.input_frame_size

    def fn(x):
        kernel = w.reshape(m.output_frame_size, k, f_in).permute(0, 2, 1)
        return torch.nn.functional.conv1d(x.transpose(1, 2), kernel, b, stride=m.dw).transpose(1, 2)

    return fn, [(m.weight, w), (m.bias, b)]


def _bn_torch(m, torch):
    w, b = torch_params(torch, m.weight, m.bias)
    return (lambda x: torch.nn.functional.batch_norm(x, None, None, w, b, training=True, eps=m.eps)), \
        [(m.weight, w), (m.bias, b)]  # fmt: skip


def _fn(function):
    """A torch case without parameters: ``function(torch, x)``."""
    return lambda m, torch: ((lambda x: function(torch, x)), [])


def _unbatched(function):
    """Apply a batch-only torch function to one (C, H, W) image."""
    return lambda torch, x: function(torch, x[None])[0]


def _lse(k, s, beta, mean):
    def function(torch, x):
        n, c, h, w = x.shape
        cols = torch.nn.functional.unfold(x, k, stride=s).reshape(n, c, k * k, -1)
        y = torch.logsumexp(beta * cols, dim=2) / beta - (np.log(k * k) / beta if mean else 0.0)
        return y.reshape(n, c, (h - k) // s + 1, (w - k) // s + 1)

    return function


def _wta(torch, x, group):
    n, c, h, w = x.shape
    grouped = x.reshape(n, c // group, group, h, w)
    winner = torch.zeros_like(grouped).scatter(2, grouped.argmax(2, keepdim=True), 1.0)
    return (grouped * winner).reshape(n, c, h, w)




def _bn_eval(rng):
    m = nn.SpatialBatchNormalization(3)
    m.running_mean[...] = rng.standard_normal(3)
    m.running_var[...] = rng.uniform(0.5, 2, 3)
    return m.evaluate()


CASES = [
    # filter banks
    Case("SpatialConvolution", lambda rng: nn.SpatialConvolution(3, 4, 3, 2, rng=rng), normal(2, 3, 6, 5),
         torch=_conv_torch()),
    Case("SpatialConvolution-stride-pad", lambda rng: nn.SpatialConvolution(2, 3, 3, 2, 2, 1, 1, 2, rng=rng),
         normal(2, 2, 5, 6), torch=_conv_torch((1, 2), (2, 1))),
    Case("SpatialConvolution-single-image", lambda rng: nn.SpatialConvolution(2, 3, 3, 3, rng=rng), normal(2, 5, 4),
         torch=_conv_torch()),
    Case("SpatialConvolution-no-bias", lambda rng: nn.SpatialConvolution(2, 2, 2, 2, bias=False, rng=rng),
         normal(2, 2, 4, 4)),
    Case("SpatialDilatedConvolution", lambda rng: nn.SpatialDilatedConvolution(2, 3, 3, 2, 1, 2, 1, 0, 2, 1, rng=rng),
         normal(2, 2, 7, 6), torch=_conv_torch((2, 1), (0, 1), (1, 2))),
    Case("SpatialFullConvolution", lambda rng: nn.SpatialFullConvolution(3, 2, 3, 2, 2, 3, 1, 0, 1, 2, rng=rng),
         normal(2, 3, 3, 4), torch=_full_torch((3, 2), (0, 1), (2, 1))),
    Case("SpatialConvolutionMap", lambda rng: nn.SpatialConvolutionMap(nn.tables.random(4, 3, 2, rng=1), 3, 2, rng=rng),
         normal(2, 4, 5, 5), torch=_map_torch),
    Case("SpatialConvolutionMap-one-to-one-stride", lambda rng: nn.SpatialConvolutionMap(nn.tables.one_to_one(2), 2, 2, 2, 1, rng=rng),
         normal(2, 2, 4, 5), torch=_map_torch),
    Case("TemporalConvolution", lambda rng: nn.TemporalConvolution(4, 3, 3, 2, rng=rng), normal(2, 9, 4),
         torch=_temporal_torch),
    Case("SpatialZeroPadding", lambda rng: nn.SpatialZeroPadding(1, 2, 0, 3), normal(2, 2, 3, 4),
         torch=_fn(lambda torch, x: torch.nn.functional.pad(x, (1, 2, 0, 3)))),
    Case("SpatialZeroPadding-crop", lambda rng: nn.SpatialZeroPadding(-1, 2, 1, -2), normal(2, 4, 5),
         torch=_fn(_unbatched(lambda torch, x: torch.nn.functional.pad(x, (-1, 2, 1, -2))))),
    # pooling
    Case("SpatialMaxPooling", lambda rng: nn.SpatialMaxPooling(2, 2), normal(2, 3, 6, 5),
         torch=_fn(lambda torch, x: torch.nn.functional.max_pool2d(x, 2))),
    Case("SpatialMaxPooling-pad-ceil", lambda rng: nn.SpatialMaxPooling(3, 2, 2, 1, 1, 0, ceil_mode=True), normal(2, 2, 6, 7),
         torch=_fn(lambda torch, x: torch.nn.functional.max_pool2d(x, (2, 3), (1, 2), (0, 1), ceil_mode=True))),
    Case("SpatialMaxPooling-overlap-single", lambda rng: nn.SpatialMaxPooling(3, 3, 2, 2), normal(2, 7, 6),
         torch=_fn(_unbatched(lambda torch, x: torch.nn.functional.max_pool2d(x, 3, 2)))),
    Case("SpatialAveragePooling", lambda rng: nn.SpatialAveragePooling(2, 2, 2, 2), normal(2, 3, 6, 5),
         torch=_fn(lambda torch, x: torch.nn.functional.avg_pool2d(x, 2))),
    Case("SpatialAveragePooling-pad-ceil-exclude", lambda rng: nn.SpatialAveragePooling(3, 3, 2, 2, 1, 1, True, False),
         normal(2, 2, 6, 7),
         torch=_fn(lambda torch, x: torch.nn.functional.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False))),
    Case("SpatialLPPooling", lambda rng: nn.SpatialLPPooling(3, 2, 2, 2), normal(2, 3, 4, 5),
         torch=_fn(lambda torch, x: torch.nn.functional.lp_pool2d(x, 2, 2))),
    Case("SpatialLPPooling-p3-overlap", lambda rng: nn.SpatialLPPooling(2, 3, 3, 2, 1, 1), normal(2, 2, 4, 5),
         torch=_fn(lambda torch, x: torch.nn.functional.lp_pool2d(x.abs(), 3, (2, 3), 1))),
    Case("SpatialLogSumExpPooling", lambda rng: nn.SpatialLogSumExpPooling(2, 2, beta=2.0), normal(2, 3, 4, 5),
         torch=_fn(_lse(2, 2, 2.0, True))),
    Case("SpatialLogSumExpPooling-sum-overlap", lambda rng: nn.SpatialLogSumExpPooling(3, 3, 2, 2, beta=0.5, mean=False),
         normal(2, 2, 5, 6), torch=_fn(_lse(3, 2, 0.5, False))),
    Case("TemporalMaxPooling", lambda rng: nn.TemporalMaxPooling(3, 2), normal(2, 9, 4),
         torch=_fn(lambda torch, x: torch.nn.functional.max_pool1d(x.transpose(1, 2), 3, 2).transpose(1, 2))),
    Case("SpatialAdaptiveMaxPooling", lambda rng: nn.SpatialAdaptiveMaxPooling(3, 2), normal(2, 2, 5, 7),
         torch=_fn(lambda torch, x: torch.nn.functional.adaptive_max_pool2d(x, (2, 3)))),
    Case("SpatialAdaptiveAveragePooling", lambda rng: nn.SpatialAdaptiveAveragePooling(3, 2), normal(2, 2, 5, 7),
         torch=_fn(lambda torch, x: torch.nn.functional.adaptive_avg_pool2d(x, (2, 3)))),
    # normalization (LCN: no PyTorch equivalent, see test_conv_lcn.py)
    Case("SpatialSubtractiveNormalization", lambda rng: nn.SpatialSubtractiveNormalization(2, image.gaussian1d(5)),
         normal(2, 2, 6, 5)),
    Case("SpatialDivisiveNormalization", lambda rng: nn.SpatialDivisiveNormalization(2, np.ones((3, 5))),
         normal(2, 2, 5, 6)),
    Case("SpatialContrastiveNormalization", lambda rng: nn.SpatialContrastiveNormalization(2, image.gaussian(3)),
         normal(2, 2, 5, 5)),
    Case("SpatialContrastiveNormalization-mean-floor",
         lambda rng: nn.SpatialContrastiveNormalization(1, image.gaussian1d(3), mean_floor=True), normal(1, 6, 5)),
    Case("BatchNormalization", lambda rng: nn.BatchNormalization(4), normal(5, 4), torch=_bn_torch),
    Case("SpatialBatchNormalization", lambda rng: nn.SpatialBatchNormalization(3), normal(2, 3, 3, 4), torch=_bn_torch),
    Case("SpatialBatchNormalization-evaluate", _bn_eval, normal(2, 3, 3, 4), roundtrip=False),
    # non-linearities across maps
    Case("SpatialSoftMax", lambda rng: nn.SpatialSoftMax(), normal(2, 4, 3, 3),
         torch=_fn(lambda torch, x: torch.softmax(x, dim=1))),
    Case("SpatialLogSoftMax", lambda rng: nn.SpatialLogSoftMax(), normal(4, 3, 3),
         torch=_fn(lambda torch, x: torch.log_softmax(x, dim=0))),
    Case("SpatialWTA", lambda rng: nn.SpatialWTA(), normal(2, 4, 3, 3), torch=_fn(lambda torch, x: _wta(torch, x, 4))),
    Case("SpatialWTA-groups", lambda rng: nn.SpatialWTA(2), normal(2, 4, 3, 3), torch=_fn(lambda torch, x: _wta(torch, x, 2))),
    Case("SpatialMaxout", lambda rng: nn.SpatialMaxout(2), normal(2, 4, 3, 3),
         torch=_fn(lambda torch, x: x.reshape(2, 2, 2, 3, 3).max(2).values)),
    Case("SpatialDropout", lambda rng: nn.SpatialDropout(0.5, rng=1), normal(3, 4, 2, 2), reseed=reseed, roundtrip=False),
    Case("SpatialDropout-v1-single", lambda rng: nn.SpatialDropout(0.3, v1=True, rng=1), normal(4, 2, 3), reseed=reseed,
         roundtrip=False),
]  # fmt: skip
