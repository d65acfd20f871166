"""Networks with loops, unfolded in time: the :class:`Recurrent` container.

Layout: sequences are **batch-first**, ``(N, T, F)`` (N sequences, T steps, F features),
like every other ember array. Sequence modules share the helpers here:

- **masks** for padded steps: ``module.set_mask(mask)`` (or :func:`set_mask` on a whole
  network) with ``mask`` (N, T), true at real steps. A masked step leaves the state
  unchanged (``s_t = s_{t-1}``), outputs zeros and receives no gradient, so a
  right-padded sequence ends in the state of its last real step, as PyTorch's packed
  sequences do.
- **state carried across calls**: ``remember()`` makes the final state of one call the
  initial state of the next (truncated BPTT over a long stream: gradients stop at the
  call boundary); ``forget()`` goes back to zeros. ``remember(mode)`` takes Torch7's
  modes ``"both"`` (default), ``"train"``, ``"eval"``, ``"neither"``.
- an explicit initial state: pass the table ``[x, state0]`` instead of ``x``; then
  ``grad_input`` is ``[dE/dx, dE/dstate0]``. The final state is ``module.final_state``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ShapeError, check_same_shape, describe, shape_error
from ._tables import replicas, reused, table_buffers
from .containers import add_context
from .module import Composite, Module, backprop, saved, scratch

_MODES = ("both", "train", "eval", "neither")


def set_mask(module: Module, mask: Any) -> int:
    """Set the padding mask (N, T) on every sequence module of a network (``None`` clears).

    Walks the tree and calls ``set_mask`` on each module that has one (that module then
    passes it on to its own children where needed, e.g. reversed in :class:`Bidirectional`).
    Returns the number of modules that took the mask.
    """
    if hasattr(module, "set_mask"):
        module.set_mask(mask)
        return 1
    return sum(set_mask(child, mask) for child in module.children())


def pad_sequences(sequences: Sequence[Any], value: float = 0, dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Pad a list of arrays (T_i, ...) to one array (N, max T_i, ...) and its mask (N, T).

    Returns ``(padded, mask)``; ``mask[n, t]`` is True where step t of sequence n is real.
    Works for float features and for integer indices (LookupTable inputs).
    """
    if not isinstance(sequences, (list, tuple)) or not sequences:
        raise ValueError(f"pad_sequences: expected a non-empty list of arrays, got {describe(sequences)}")
    arrays = [np.asarray(s) for s in sequences]
    tail = arrays[0].shape[1:]
    bad = [i for i, a in enumerate(arrays) if a.ndim < 1 or a.shape[1:] != tail]
    if bad:
        raise ShapeError(f"pad_sequences: every sequence must be (T_i, *{tail}); sequence {bad[0]} is {arrays[bad[0]].shape}")
    lengths = [a.shape[0] for a in arrays]
    padded = np.full((len(arrays), max(lengths)) + tail, value, dtype=dtype or np.result_type(*arrays))
    mask = np.zeros((len(arrays), max(lengths)), dtype=bool)
    for i, a in enumerate(arrays):
        padded[i, : a.shape[0]] = a
        mask[i, : a.shape[0]] = True
    return padded, mask


def host_mask(module: Module, mask: Any) -> np.ndarray | None:
    """A mask as a boolean NumPy array (N, T) (kept on the host, converted per backend), or None."""
    if mask is None:
        return None
    host = np.asarray(mask if isinstance(mask, np.ndarray) else module.backend.to_numpy(mask))
    if host.ndim != 2:
        raise shape_error(module, "a mask of shape (N, T)", host)
    return host != 0


def check_mask(module: Any, n: int, t: int) -> None:
    """Raise a ShapeError unless ``module.mask`` (if any) fits an input with (N, T) = (n, t)."""
    if module.mask is not None and module.mask.shape != (n, t):
        raise ShapeError(f"{module!r}: the mask has shape {module.mask.shape} but the input has (N, T) = ({n}, {t})")


def _ragged_message(module, value, what):
    lengths = []
    for item in value:
        shape = getattr(item, "shape", None)
        lengths.append(shape[0] if shape else None)
    if len(set(lengths)) > 1:
        return ShapeError(
            f"{module!r}: expected {what}, got a list of {len(value)} sequences of mismatched lengths "
            f"{lengths}: pad them to one length with nn.pad_sequences(seqs) and pass the returned mask "
            f"with nn.set_mask(model, mask)"
        )
    return ShapeError(f"{module!r}: expected {what} as one array, got {describe(value)} (stack it with np.stack)")


class SequenceModule(Module):
    """Base of the modules that map (N, T, F) sequences: masks, remember/forget, states.

    The carried state is per-call state like the others: ``clear_state()`` drops it
    (as ``forget()`` does), and so does ``to()``.
    """

    _input_kind = "any"

    final_state = saved("the state after the last step of the last call (views of the module's buffers)")
    state_given = saved("True when the last input was the table [x, state0] (grad_input is then a table)")
    carried = saved("the final state kept for the next call by remember() (one of carry_buffers)")
    carry_buffers = scratch("two alternating copies of the final state: the carried state is the "
                            "input of the call about to be back-propagated, so it is never overwritten in place")
    mask_steps = scratch("(mask, backend, feature_major, per-step float mask, per-step keep) on the backend")
    zero_state = scratch("zeros for the initial state when none is given or carried")

    def __init__(self):
        super().__init__()
        self.mask = None
        self._remember_mode = "neither"

    # ---------------------------------------------------------------- masks
    def set_mask(self, mask):
        """Mask padded steps: ``mask`` (N, T), true/nonzero at real steps; ``None`` clears."""
        self.mask = host_mask(self, mask)
        return self

    def _mask_arrays(self, n, t, feature_major=False):
        """Per-step masks (float, and bool ``keep`` = not mask, true at padded steps), shaped
        (T, N, 1) to broadcast over (N, H) steps, or (T, 1, N) over (H, N) steps; or (None, None)."""
        if self.mask is None:
            return None, None
        check_mask(self, n, t)
        cached = self.mask_steps
        if cached is None or cached[0] is not self.mask or cached[1] != self.backend or cached[2] != feature_major:
            backend = self.backend
            per_step = self.mask.T[:, None, :] if feature_major else self.mask.T[:, :, None]
            mask = backend.asarray(np.ascontiguousarray(per_step), dtype=backend.dtype)
            keep = backend.asarray(np.ascontiguousarray(~per_step), dtype=bool)
            cached = self.mask_steps = (self.mask, backend, feature_major, mask, keep)
        return cached[3], cached[4]

    # ---------------------------------------------------------------- remember / forget
    def remember(self, mode="both"):
        """Carry the final state of each call into the next one (Torch7 modes, see module doc)."""
        if mode not in _MODES:
            raise ValueError(f"{type(self).__name__}.remember: mode must be one of {_MODES}, got {mode!r}")
        self._remember_mode = mode
        if mode == "neither":
            self.carried = None
        return self

    def forget(self):
        """Drop the carried state: the next call starts from zeros."""
        self.carried = None
        return self

    def _remembering(self):
        mode = self._remember_mode
        return mode == "both" or (mode == "train" and self.train) or (mode == "eval" and not self.train)

    def _carry(self, final_states):
        """Keep a copy of the final state for the next call when remembering."""
        if not self._remembering():
            self.carried = None
            return
        pair = self.carry_buffers or [None, None]
        spare = 1 if self.carried is not None and self.carried is pair[0] else 0
        pair[spare] = self.carried = table_buffers(self.backend, pair[spare], [s.shape for s in final_states])
        self.carry_buffers = pair
        for keep, s in zip(self.carried, final_states):
            keep[...] = s

    # ---------------------------------------------------------------- input checks
    def _split_input(self, input, features, state_text):
        """Returns ``(x, given_state or None)``; x must be (N, T, features)."""
        xp = self.backend.xp
        what = f"input (N, T, {features})"
        if isinstance(input, (list, tuple)):
            if len(input) == 2 and isinstance(input[0], xp.ndarray) and input[0].ndim == 3:
                x, state = input
            else:
                if input and all(hasattr(v, "shape") for v in input):
                    raise _ragged_message(self, input, what)
                raise shape_error(self, f"{what} or the table [x, {state_text}]", input)
        else:
            x, state = input, None
        if not isinstance(x, xp.ndarray) or x.ndim != 3 or (features is not None and x.shape[2] != features):
            raise shape_error(self, what, x)
        if x.dtype != self.backend.dtype:
            raise ShapeError(f"{self!r}: expected input of dtype {self.backend.dtype}, got {x.dtype}")
        return x, state

    def _check_state(self, state, shapes, state_text):
        """The initial state as a list of arrays with the given shapes, or a ShapeError."""
        xp = self.backend.xp
        parts = [state] if len(shapes) == 1 else (list(state) if isinstance(state, (list, tuple)) else None)
        ok = parts is not None and len(parts) == len(shapes) and all(
            isinstance(p, xp.ndarray) and p.shape == s and p.dtype == self.backend.dtype for p, s in zip(parts, shapes)
        )
        if not ok:
            if parts is None or len(shapes) == 1:
                got = describe(state)
            else:
                got = "[" + ", ".join(describe(p) for p in parts) + "]"
            raise ShapeError(f"{self!r}: expected the initial state {state_text} = {shapes if len(shapes) > 1 else shapes[0]}, got {got}")
        return parts

    def _start_state(self, given, shapes, state_text):
        """(states, from_input): the given state, the carried one, or zeros."""
        if given is not None:
            return self._check_state(given, shapes, state_text), True
        if self.carried is not None and self._remembering():
            if [c.shape for c in self.carried] != list(shapes):
                raise ShapeError(
                    f"{self!r}: the remembered state has shape {[c.shape for c in self.carried]} but this "
                    f"call needs {list(shapes)} (another batch size?); call forget() first"
                )
            return self.carried, False
        zeros = self.zero_state = table_buffers(self.backend, self.zero_state, shapes)
        for z in zeros:
            z.fill(0)
        return zeros, False


def _first(state):
    return state[0] if isinstance(state, list) else state


class Recurrent(Composite, SequenceModule):
    """Unfold any step module over time, with shared weights, and back-propagate through time.

    The step module (a "cell", e.g. :class:`LSTMCell`, or any module of your own) maps
    the table ``[x_t, s_{t-1}]`` to ``s_t``; the state is one array (N, H) or a list of
    arrays (the LSTM's [h, c]). For a sequence x (N, T, F)::

        fprop:  s_0 = zeros (or the given / remembered state);  for t = 1..T:
                s_t = cell_t([x_t, s_{t-1}]),   y_t = first array of s_t
        bprop:  for t = T..1 (reverse order):  dE/ds_t = dE/dy_t + dE/ds_t (from step t+1)
                [dE/dx_t, dE/ds_{t-1}] = cell_t.backward([x_t, s_{t-1}], dE/ds_t)

    ``cell_t`` are clones of ``cell`` that share its parameters **and** gradient arrays
    (``clone(*names)``), so every step's dE/dW accumulates into one place. Output
    (N, T, H). ``rho`` (Torch7's name) truncates BPTT: only the last ``rho`` steps of each
    call are back-propagated through (earlier steps get zero gradient), and only rho+1
    clones are kept. The state size comes from ``cell.state_size`` or ``state_size``.
    """

    def __init__(self, cell: Module, rho: int | None = None, state_size: Any = None) -> None:
        super().__init__()
        if not isinstance(cell, Module):
            raise TypeError(f"Recurrent: expected a step Module, got {type(cell).__name__}")
        if rho is not None and (not isinstance(rho, int) or rho <= 0):
            raise ValueError(f"Recurrent: rho must be a positive int or None, got {rho!r}")
        size = state_size if state_size is not None else getattr(cell, "state_size", None)
        if size is None:
            raise ValueError(f"Recurrent: {cell!r} has no state_size; pass state_size=H or [H1, H2, ...]")
        self.cell, self.rho = cell, rho
        self.sizes = [size] if isinstance(size, int) else list(size)
        if not self.sizes or any(not isinstance(s, int) or s <= 0 for s in self.sizes):
            raise ValueError(f"Recurrent: state_size must be a positive int or a list of them, got {size!r}")
        self.backend = cell.backend

    clones = scratch("the step modules: the cell, then replicas sharing its arrays (rho + 1 at most)")
    step_inputs = saved("each clone's last input [x_t (a view of the caller's x), s_{t-1}]")
    held = scratch("per clone, the masked new state (padded rows keep s_{t-1})")
    grad_x = scratch("dE/dx (N, T, F)")
    grad_state = scratch("dE/ds_t flowing back through time, one array per state part")
    grad_step = scratch("per clone, the gradient handed to the step module")

    def children(self):
        return [self.cell]

    def _state_text(self):
        return "(N, H)" if len(self.sizes) == 1 else "[" + ", ".join("(N, H)" for _ in self.sizes) + "]"

    # ---------------------------------------------------------------- fprop
    def update_output(self, input):
        x, given = self._split_input(input, None, self._state_text())
        n, t_len = x.shape[:2]
        shapes = [(n, s) for s in self.sizes]
        state, self.state_given = self._start_state(given, shapes, self._state_text())
        mask_tm, keep_tm = self._mask_arrays(n, t_len)
        count = t_len if self.rho is None else min(t_len, self.rho + 1)
        # replicas share every array of the cell and follow it when its parameters are
        # re-pointed (get_parameters, load); each keeps its own output buffers
        clones = self.clones = replicas(self.cell, self.clones or [], count)
        self.step_inputs = [None] * count
        if mask_tm is not None:
            self.held = [table_buffers(self.backend, old, shapes) for old in reused(self.held, count)]
        out = self.output = self._fit(self.output, (n, t_len, self.sizes[0]))
        state = state if len(self.sizes) > 1 else state[0]
        for t in range(t_len):
            slot = t % count
            step_input = [x[:, t], state]
            try:
                new = clones[slot].forward(step_input)
            except Exception as error:
                add_context(error, self, f"step {t}", clones[slot])
                raise
            if mask_tm is not None:
                new = self._hold(new, state, keep_tm[t], self.held[slot])
            self.step_inputs[slot] = step_input
            out[:, t] = _first(new)
            state = new
        if mask_tm is not None:
            out *= mask_tm.transpose(1, 0, 2)
        self.final_state = state
        self._carry(state if isinstance(state, list) else [state])
        return out

    def _hold(self, new, old, keep, held):
        """``held`` = the new state with the masked rows taken from the old state."""
        xp = self.backend.xp
        news, olds = (new, old) if isinstance(new, list) else ([new], [old])
        for buf, a, b in zip(held, news, olds):
            buf[...] = a
            xp.copyto(buf, b, where=keep)
        return held if isinstance(new, list) else held[0]

    # ---------------------------------------------------------------- bprop
    def _backprop(self, input, grad_output, scale, need_input, need_params):
        """BPTT: for t = T..1, dE/ds_t = dE/dy_t + dE/ds_t (from step t+1), then the step's
        bprop; the steps' input gradients are needed for the state even when dE/dx is not."""
        x, _ = self._split_input(input, None, self._state_text())
        n, t_len = x.shape[:2]
        check_same_shape(self, "grad_output", grad_output, self.output)
        mask_tm, keep_tm = self._mask_arrays(n, t_len)
        clones, count = self.clones, len(self.clones)
        gx = None
        if need_input:
            gx = self.grad_x = self._fit(self.grad_x, x.shape)
            gx.fill(0)
        shapes = [(n, s) for s in self.sizes]
        grad_state = self.grad_state = table_buffers(self.backend, self.grad_state, shapes)
        for g in grad_state:
            g.fill(0)
        self.grad_step = [table_buffers(self.backend, old, shapes) for old in reused(self.grad_step, count)]
        stop = 0 if self.rho is None else max(0, t_len - self.rho)
        for t in range(t_len - 1, stop - 1, -1):
            slot = t % count
            # total dE/ds_t: from step t+1 plus, on the first array, from the output y_t
            grad_state[0] += grad_output[:, t] if mask_tm is None else grad_output[:, t] * mask_tm[t]
            g_new = self.grad_step[slot]
            for a, b in zip(g_new, grad_state):
                a[...] = b
                if mask_tm is not None:
                    a *= mask_tm[t]  # s_t = m * cell(...) + (1 - m) * s_{t-1}
            g_cell = g_new if len(self.sizes) > 1 else g_new[0]
            wanted = need_input or t > stop  # the first step's dE/ds_0 only feeds grad_input
            try:
                g_in = backprop(clones[slot], self.step_inputs[slot], g_cell, scale, wanted, need_params)
            except Exception as error:
                add_context(error, self, f"step {t}", clones[slot])
                raise
            if not wanted:
                break
            if need_input:
                gx[:, t] = g_in[0]
            g_prev = g_in[1] if len(self.sizes) > 1 else [g_in[1]]
            for g_state, g in zip(grad_state, g_prev):
                if mask_tm is None:
                    g_state[...] = g
                else:  # dE/ds_{t-1} = (1 - m) * dE/ds_t + the cell's part
                    g_state *= keep_tm[t]
                    g_state += g
        if not need_input:
            return
        if stop > 0:
            for g in grad_state:  # truncated: nothing flows into the initial state
                g.fill(0)
        if self.state_given:
            self.grad_input = [gx, grad_state if len(self.sizes) > 1 else grad_state[0]]
        else:
            self.grad_input = gx

    def __repr__(self):
        extra = f", rho={self.rho}" if self.rho is not None else ""
        return f"Recurrent({self.cell!r}{extra})"


__all__ = ["Recurrent", "SequenceModule", "set_mask", "pad_sequences"]
