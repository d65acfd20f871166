"""The one training loop behind :func:`ember.training.fit` and ``ember train``.

A :class:`TrainingRun` holds a run's state and performs it: per epoch, shuffle (a
seeded generator), then per minibatch set the scheduled learning rate, call the
optimizer with the lecture's ``feval`` closure (plus weight decay and clipping inside
it), apply the max-norm constraint, checkpoint every N steps; at the end of an epoch
evaluate (evaluation mode) on the validation and test sets, log a CSV row, step the
schedule and early stopping, save the model and a checkpoint.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

from .. import io, optim
from ..data.preprocess import to_file
from ..errors import TrainingError
from ..optim import Logger, MaxNorm, WeightDecay, clip_grad_norm, parameter_mask, parse_schedule
from .checkpoint import generators
from .distributed_run import join_run
from .progress import Progress
from .run_state import RunState, fingerprint, load_training, save_training
from .train import _HAS, TORCH_LR, Dataset, TrainOptions, evaluate, make_feval, on_model_backend


class TrainingRun:
    """One training run: the state of :func:`ember.training.fit` and its steps."""

    def __init__(self, model, criterion, data, options, out, save_metadata):
        self.model, self.data, self.options, self.out = model, data, options, out
        self.criterion = on_model_backend(criterion, model)
        self.save_metadata = save_metadata
        model.training()
        model.compute_grad_input = False  # the input is data: skip its gradient
        self.params, self.grads = model.get_parameters()
        self.step_fn = optim.OPTIMIZERS[options.optimizer]
        self.config, self.state = options.optimizer_config(), {}
        n, bs = len(data.y_train), options.batch_size
        self.steps_per_epoch = -(-n // bs)
        self.schedule = None
        if options.schedule:
            if not options.lr_key:
                raise ValueError(f"optimizer {options.optimizer} has no learning rate to schedule")
            lr0 = self.config.get(options.lr_key, TORCH_LR[options.optimizer])
            self.schedule = parse_schedule(options.schedule, lr0, options.epochs, self.steps_per_epoch)
        if options.early_stop and data.y_valid is None:
            raise ValueError("early stopping needs a validation set (--valid N)")
        mask = parameter_mask(model) if options.skip_biases else None
        self.decay = WeightDecay(options.weight_decay, options.l1, options.decay_from, mask)
        self.max_norm = MaxNorm(model, options.max_norm) if options.max_norm else None
        self.data_rng = np.random.default_rng(options.seed)
        self.gens = generators(model, self.data_rng)
        self.best_params = self.params.copy() if options.early_stop else None
        self.fingerprint = fingerprint(options, data, self.config)
        backend = model.backend
        self.batch_x = backend.empty((bs,) + data.x_train.shape[1:])
        self.batch_y = np.empty(bs, dtype=np.int64)
        self.fevals = {}  # batch length -> the closure over the batch buffers (built once per length)
        self.predicted, self.hits = np.empty(bs, dtype=np.int64), np.empty(bs, dtype=bool)
        self.run = RunState()
        self.epoch = 0
        self.dist = join_run(self)  # None on one rank; else the MPI side (ember.distributed)
        self.evaluate = evaluate if self.dist is None else self.dist.evaluate  # ranks share the evaluation

    # ------------------------------------------------------------------ the loop
    def train(self):
        """Run (or resume) the epochs; returns the history, one dict per completed epoch."""
        o, run = self.options, self.run
        if o.resume and o.checkpoint and os.path.exists(o.checkpoint):
            self.run = run = load_training(o.checkpoint, self)
            print(f"resumed from {o.checkpoint}: epoch {run.epoch + 1}, step {run.step}", file=self.out, flush=True)
            if self.schedule is not None and run.order is not None and run.step:
                # the learning rate of the step before the checkpoint: the epoch's log row reports it
                # even when the checkpoint fell after the epoch's last step (nothing left to step)
                self.config[o.lr_key] = self.schedule(run.epoch, run.step - 1)
            if run.finished or run.epoch >= o.epochs:
                why = "it had stopped early" if run.finished else f"it completed {run.epoch} of {o.epochs} epochs"
                print(f"nothing to train: {why} (raise --epochs to continue)", file=self.out, flush=True)
        elif o.resume:
            print(f"no checkpoint at {o.checkpoint}: starting from scratch", file=self.out, flush=True)
        if self.dist is not None:  # every rank continues from rank 0's state (fresh or resumed)
            self.run = run = self.dist.broadcast_run()
        # the log is opened (a resumed one cut back to the checkpoint's rows) only when the
        # first epoch ends: a resume that fails before then has written nothing
        self.logger, self.steps_taken = None, 0
        self.keep_rows = run.log_rows if run.step or run.epoch else None
        while run.epoch < o.epochs and not run.finished:
            self.epoch = run.epoch
            if not self._train_epoch():
                return run.history  # stopped by max_steps
            self._end_epoch()
        return run.history

    def _train_epoch(self):
        o, run, data = self.options, self.run, self.data
        n, bs = len(data.y_train), o.batch_size
        if run.order is None:
            run.order, run.position, run.loss_sum, run.seen, run.correct = self.data_rng.permutation(n), 0, 0.0, 0, 0
        self.started = time.perf_counter()
        bar = Progress(n, f"epoch {self.epoch + 1}/{o.epochs}", stream=self.out, enabled=o.progress)
        bar.update(run.position)
        backend = self.model.backend
        while run.position < n:
            if o.max_steps is not None and run.step >= o.max_steps:
                bar.close()
                if self.steps_taken:  # (else the checkpoint already holds exactly this state)
                    self._checkpoint()
                print(f"stopped after {run.step} steps (max_steps)" + (f"; resume with --resume from {o.checkpoint}"
                      if o.checkpoint else ""), file=self.out, flush=True)  # fmt: skip
                return False
            index = run.order[run.position : run.position + bs]
            local = index if self.dist is None else self.dist.shard(index)  # this rank's share of the batch
            xb, yb = self.batch_x[: len(local)], self.batch_y[: len(local)]
            if hasattr(data.x_train, "gather"):  # raw images, preprocessed as the batch is gathered
                data.x_train.gather(local, xb)
            elif backend.xp is np and data.x_train.dtype == xb.dtype:
                np.take(data.x_train, local, axis=0, out=xb)  # gathered straight into the batch buffer
            else:  # another dtype (a float64 model) or the GPU
                xb[...] = backend.asarray(data.x_train[local])
            np.take(data.y_train, local, out=yb)
            if self.schedule is not None:
                self.config[o.lr_key] = self.schedule(self.epoch, run.step)
            if self.dist is None:  # the closure reads the batch buffers, refilled in place each step
                feval = self.fevals.get(len(local))
                if feval is None:
                    feval = self.fevals[len(local)] = make_feval(self.model, self.criterion, xb, yb, self.grads,
                                                                 self._regularize)  # fmt: skip
            else:  # sum over the ranks (or the chunks), then regularize the global gradient; built once per length
                feval = self.fevals.get(len(index))
                if feval is None:
                    feval = self.fevals[len(index)] = self.dist.feval(xb, yb, self._regularize)
            loss = float(self.step_fn(feval, self.params, self.config, self.state)[1][0])
            if not math.isfinite(loss):
                bar.close()
                self._fail(loss, run.position // bs + 1)
            if self.max_norm is not None:
                self.max_norm.apply()
            run.step += 1
            self.steps_taken += 1
            run.position += len(index)
            run.loss_sum += loss * len(index)
            run.seen += len(index)
            if self.dist is None:
                run.correct += self._count_correct(yb)
            else:
                run.correct += self.dist.correct  # summed over the ranks
            bar.update(len(index), loss=run.loss_sum / run.seen)
            if o.checkpoint_every and run.step % o.checkpoint_every == 0:
                self._checkpoint()
        bar.close()
        return True

    def _count_correct(self, yb) -> int:
        """How many rows of the model's output have their maximum at the label ``yb``
        (into preallocated arrays on the CPU; through a NumPy copy of the argmax on a GPU)."""
        output = self.model.output
        if isinstance(output, np.ndarray) and output.ndim == 2 and output.shape[0] == len(yb):
            predicted, hits = self.predicted[: len(yb)], self.hits[: len(yb)]
            np.argmax(output, axis=1, out=predicted)
            np.equal(predicted, yb, out=hits)
            return int(np.count_nonzero(hits))
        return int((self.model.backend.to_numpy(output.argmax(axis=1)) == yb).sum())

    def _regularize(self, x, g):
        self.decay.apply(x, g, self.epoch)
        if self.options.clip_grad:
            clip_grad_norm(g, self.options.clip_grad)

    def _end_epoch(self):
        o, run, data = self.options, self.run, self.data
        train_time = time.perf_counter() - self.started
        row = {"epoch": self.epoch + 1, "step": run.step, "train_loss": run.loss_sum / max(run.seen, 1),
               "train_acc": run.correct / max(run.seen, 1)}  # fmt: skip
        if data.y_valid is not None:
            valid = self.evaluate(self.model, self.criterion, data.x_valid, data.y_valid)
            row["valid_loss"], row["valid_acc"] = valid[:2]
        row["test_loss"], row["test_acc"], _ = self.evaluate(self.model, self.criterion, data.x_test, data.y_test)
        row["lr"] = self._current_lr()
        row["time"] = train_time
        run.history.append(row)
        valid = f"valid loss {row['valid_loss']:.4f} acc {row['valid_acc'] * 100:6.2f}%  " if "valid_loss" in row else ""
        print(f"epoch {row['epoch']:>3}  train loss {row['train_loss']:.4f} acc {row['train_acc'] * 100:6.2f}%  {valid}"
              f"test loss {row['test_loss']:.4f} acc {row['test_acc'] * 100:6.2f}%  time {train_time:5.1f}s  "
              f"lr {row['lr']:.4g}", file=self.out, flush=True)  # fmt: skip
        if o.log:
            if self.logger is None:
                self.logger = Logger(o.log, keep_rows=self.keep_rows)
            self.logger.add(row)
            run.log_rows = self.logger.rows
        monitored = row.get("valid_loss", row["train_loss"])
        if self.schedule is not None:
            self.schedule.observe(monitored)
        improved = run.best is None or monitored < run.best
        if improved:
            run.best, run.best_epoch, run.bad_epochs = monitored, row["epoch"], 0
            if self.best_params is not None:
                self.best_params[...] = self.params
        else:
            run.bad_epochs += 1
        run.epoch, run.order, run.position = self.epoch + 1, None, 0
        if o.early_stop and run.bad_epochs >= o.early_stop:
            self.params[...] = self.best_params
            run.finished = True
            print(f"early stopping: no better validation loss for {o.early_stop} epochs; keeping epoch "
                  f"{run.best_epoch} (valid loss {run.best:.4f})", file=self.out, flush=True)  # fmt: skip
        if o.save and (not o.early_stop or improved or run.finished):
            self._save_model(row)
        self._checkpoint()

    # ------------------------------------------------------------------ files
    def _current_lr(self):
        key = self.options.lr_key
        if not key:
            return math.nan
        lr = self.config.get(key, TORCH_LR[self.options.optimizer])
        if self.options.optimizer in _HAS["learning_rate_decay"]:
            count = self.state.get("eval_counter", self.state.get("t", 0))
            lr = lr / (1 + count * self.config.get("learning_rate_decay", 0.0))
        return lr

    def _save_model(self, row):
        arrays, meta = to_file(self.data.preprocessor)
        meta = {**self.save_metadata, **meta, "epoch": str(row["epoch"]), "test_accuracy": f"{row['test_acc']:.6f}"}
        io.save(self.model, self.options.save, meta, extra=arrays)

    def _checkpoint(self):
        if not self.options.checkpoint:
            return
        if not bool(np.isfinite(self.model.backend.to_numpy(self.params)).all()):
            self._fail(math.nan, None, "the parameters are not finite")
        save_training(self.options.checkpoint, self)

    def _fail(self, loss, batch, what=None):
        o, run = self.options, self.run
        kept = []
        if o.checkpoint and os.path.exists(o.checkpoint):
            kept.append(f"the last checkpoint ({o.checkpoint}) is intact: lower the learning rate and --resume")
        if o.save and os.path.exists(o.save):
            kept.append(f"the model saved at the end of epoch {run.epoch} ({o.save}) is intact")
        where = f"at epoch {self.epoch + 1}" + (f", step {batch}" if batch else "")
        what = what or f"the loss became {loss}"
        raise TrainingError(f"training stopped: {what} {where} (learning rate {self._current_lr():g}); "
                            f"try a smaller --lr." + (" " + "; ".join(kept) + "." if kept else ""))  # fmt: skip


def fit(model, criterion, data: Dataset, options: TrainOptions, out=None, save_metadata=None):
    """Train ``model`` on ``data``; print one summary line per epoch.

    Returns the history: one dict per completed epoch (train / valid / test loss and
    accuracy, learning rate, time). With ``options.checkpoint`` the run can be killed
    at any moment and resumed (``resume=True``) to the same parameters, bit for bit.
    Raises :class:`TrainingError` if the loss becomes NaN or infinite (the last
    checkpoint and model file are left untouched).
    """
    return TrainingRun(model, criterion, data, options, out or sys.stdout, save_metadata or {}).train()
