"""Window-sweep plumbing shared by the pooling modules.

A pooling module reads, for output (y, x) and window tap (i, j), the pixel
(y*dh + i - pad_h, x*dw + j - pad_w). The kh*kw taps of the input (or of a padded
copy) are gathered by one strided copy into a (kh*kw, N, C, OH, OW) array, each tap
laid out like the output, so forward and backward are a few whole-array operations per
tap on contiguous memory and never loop over pixels in Python. (NumPy runs ufuncs on
strided tap views 2-4x slower than on contiguous arrays; its plain copies do not slow
down.) Gradients go back through the tap views of the input gradient: one copy each
when the windows tile the input, strided adds otherwise. Outputs and gradients keep the
input's memory layout.
"""

from __future__ import annotations

from ..errors import check_non_negative, check_positive, shape_error
from ._im2col import as_strided, out_size, tap_view
from ._layout import axis_order
from ..backend import unbuffered
from ._spatial import SpatialModule
from .module import saved, scratch


class WindowPooling(SpatialModule):
    """Base of the window poolings: geometry, padding, tap views, gradient targets."""

    #: value the padding border holds in the forward pass
    _pad_fill = 0.0

    taps = saved("the kh*kw window taps of the (padded) input, (kh*kw, N, C, OH, OW), each "
                 "laid out like the output")
    grad_input4 = scratch("dE/dx, 4-D, in the input's layout")
    grad_padded = scratch("dE/dx_pad, the input gradient with its border")

    def _init_window(self, kw, kh, dw, dh, pad_w=0, pad_h=0, ceil_mode=False):
        owner = type(self).__name__
        check_positive(owner, kw=kw, kh=kh, dw=dw, dh=dh)
        check_non_negative(owner, pad_w=pad_w, pad_h=pad_h)
        if pad_w > kw // 2 or pad_h > kh // 2:
            raise ValueError(f"{owner}: padding must be at most half the kernel, got pad {pad_w},{pad_h} "
                             f"for a {kw}x{kh} kernel")  # fmt: skip
        self.kw, self.kh, self.dw, self.dh = kw, kh, dw, dh
        self.pad_w, self.pad_h = pad_w, pad_h
        self.ceil_mode = bool(ceil_mode)

    def ceil(self):
        """Round output sizes up (Torch7 ``:ceil()``); returns self."""
        self.ceil_mode = True
        self.__dict__.get("_spec_args", {})["ceil_mode"] = True
        return self

    def floor(self):
        """Round output sizes down (the default; Torch7 ``:floor()``); returns self."""
        self.ceil_mode = False
        self.__dict__.get("_spec_args", {})["ceil_mode"] = False
        return self

    # ---------------------------------------------------------------- geometry
    def _out_hw(self, input, x4):
        h, w = x4.shape[2:]
        if h + 2 * self.pad_h < self.kh or w + 2 * self.pad_w < self.kw:
            min_h, min_w = max(self.kh - 2 * self.pad_h, 1), max(self.kw - 2 * self.pad_w, 1)
            raise shape_error(self, f"input {self._expected_input()} with H >= {min_h} and W >= {min_w} "
                                    f"(the {self.kw}x{self.kh} window must fit)", input)  # fmt: skip
        return (out_size(h, self.kh, self.dh, self.pad_h, ceil_mode=self.ceil_mode),
                out_size(w, self.kw, self.dw, self.pad_w, ceil_mode=self.ceil_mode))  # fmt: skip

    def _span(self, oh, ow):
        """Rows and columns of the (padded) source that the windows read."""
        return (oh - 1) * self.dh + self.kh, (ow - 1) * self.dw + self.kw

    def _is_direct(self, x4, oh, ow):
        """True when the windows stay inside the unpadded input (no copy needed)."""
        hs, ws = self._span(oh, ow)
        return not (self.pad_h or self.pad_w) and hs <= x4.shape[2] and ws <= x4.shape[3]

    def _source(self, x4, oh, ow):
        """The array the windows read: the input itself, or a padded copy."""
        if self._is_direct(x4, oh, ow):
            return x4
        self.padded = self._padded(self.padded, x4, self.pad_h, self.pad_w, self._span(oh, ow), self._pad_fill)
        return self.padded

    def _taps(self, src, oh, ow):
        """The kh*kw tap views of ``src``, in scan order (row by row)."""
        return [tap_view(src, i, j, (oh, ow), (self.dh, self.dw)) for i in range(self.kh) for j in range(self.kw)]

    def _output4(self, x4, oh, ow):
        self.out4 = self._fit(self.out4, x4.shape[:2] + (oh, ow), order=axis_order(x4))
        return self.out4

    def _tiles(self, x4, oh, ow):
        """True when the windows tile the source exactly once (stride == kernel, direct)."""
        return self.dh == self.kh and self.dw == self.kw and self._is_direct(x4, oh, ow)

    def _grad_target(self, x4, oh, ow, zero=True):
        """(gsrc, finish): the array whose tap views receive gradient, and a function that
        turns it into grad_input (4-D, the input's layout). ``zero=False`` (only valid when
        the windows tile the source) skips zeroing all but the uncovered edge."""
        gx4 = self.grad_input4 = self._fit(self.grad_input4, None, like=x4)
        if self._is_direct(x4, oh, ow):
            hs, ws = self._span(oh, ow)
            if zero:
                gx4.fill(0)
            else:
                gx4[:, :, hs:] = 0
                gx4[:, :, :, ws:] = 0
            return gx4, lambda: gx4
        hs, ws = self._span(oh, ow)
        gpad = self.grad_padded = self._fit(self.grad_padded, x4.shape[:2] + (hs, ws), order=axis_order(x4))
        gpad.fill(0)
        h, w = x4.shape[2:]

        def finish():
            gx4.fill(0)
            hh, ww = min(h, hs - self.pad_h), min(w, ws - self.pad_w)
            self.backend.xp.copyto(gx4[:, :, :hh, :ww], gpad[:, :, self.pad_h : self.pad_h + hh, self.pad_w : self.pad_w + ww])
            return gx4

        return gpad, finish

    def _grad_setup(self, input, grad_output):
        """(x4, grad_output 4-D in the output's layout, the forward's 4-D output, (OH, OW))
        for a backward pass."""
        x4, g4 = self._batch_pair(input, grad_output)
        return x4, self._grad_output_like(g4, self.out4), self.out4, g4.shape[2:]

    def _gather(self, x4, oh, ow):
        """(kh*kw, N, C, OH, OW): tap t of the windows over ``x4`` (through :meth:`_source`,
        so padding and ceil-mode edges hold ``_pad_fill``) copied to [t], laid out like
        the output, into :attr:`taps`."""
        src = self._source(x4, oh, ow)
        n, c = src.shape[:2]
        order = axis_order(src)
        shape = (self.kh * self.kw, n, c, oh, ow)
        taps = self.taps = self._fit(self.taps, shape, order=(0,) + tuple(a + 1 for a in order))
        s_n, s_c, s_h, s_w = src.strides
        windows = as_strided(self.backend.xp, src, (self.kh, self.kw, n, c, oh, ow),
                             (s_h, s_w, s_n, s_c, self.dh * s_h, self.dw * s_w))  # fmt: skip
        grid = taps.reshape((self.kh, self.kw) + taps.shape[1:])
        self._split(lambda a, b: self.backend.xp.copyto(grid[:, :, :, a:b], windows[:, :, :, a:b]), src)
        return taps

    def _reduce_taps(self, ufunc, taps, out4):
        """out4 = ufunc-reduction (add, maximum) of the gathered taps, plane halves in parallel."""
        xp = self.backend.xp

        def work(a, b):
            out = out4[:, a:b]
            if len(taps) == 1:
                xp.copyto(out, taps[0][:, a:b])
                return
            ufunc(taps[0][:, a:b], taps[1][:, a:b], out=out)
            for tap in taps[2:]:
                ufunc(out, tap[:, a:b], out=out)

        self._split(work, out4)
        return out4

    def _spread(self, x4, oh, ow, values):
        """grad_input (4-D) whose tap views receive ``values(t, a, b)`` (an output-shaped
        array for tap t and planes a..b-1): copied in when the windows tile the input,
        else added up."""
        xp = self.backend.xp
        assign = self._tiles(x4, oh, ow)
        gsrc, finish = self._grad_target(x4, oh, ow, zero=not assign)

        def work(a, b):
            for t, gview in enumerate(self._taps(gsrc[:, a:b], oh, ow)):
                contribution = values(t, a, b)
                if assign:
                    xp.copyto(gview, contribution)
                else:
                    with unbuffered(xp):
                        xp.add(gview, contribution, out=gview)

        self._split(work, x4)
        return finish()

    def extra_repr(self):
        text = f"{self.kw}x{self.kh}, {self.dw},{self.dh}"
        if self.pad_w or self.pad_h:
            text += f", {self.pad_w},{self.pad_h}"
        if self.ceil_mode:
            text += ", ceil"
        return text
