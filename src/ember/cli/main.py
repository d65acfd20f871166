"""The ``ember`` command (also ``python -m ember``).

    ember train [--model mnist-mlp] [--epochs 10] [--optimizer sgd] [--lr 0.05] [--log run.csv]
                [--checkpoint-every N] [--resume] ...
    ember eval MODEL_FILE [--confusion-png confusion.png]   (MODEL_FILE may be a Torch7 .t7 file)
    ember convert MODEL.t7 MODEL.safetensors [--partial]
    ember plot RUN.csv [-o curves.png]
    ember models
    ember manifold [--data FILE.npz] [--steps N] [--seed N] [--save-embedding OUT.npz] [--plot OUT.png]
    ember pretrain {features,convnet} ...   (unsupervised features, pre-training; docs/unsupervised.md)
    ember --version

Exit status: 0 success, 1 failure (bad data, a missing file or optional package, a
diverging run; one ``ember CMD: error: ...`` line on stderr), 2 usage error (an unknown
option or an invalid value, reported by argparse before any work starts), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .. import runtime

from .argtypes import COUNT, NON_NEGATIVE, POSITIVE, POSITIVE_INT, probability as _probability


def _data_options(group, evaluating=False):
    from ..data.layout import LAYOUTS
    from ..data.named import DATASETS

    group.add_argument("--dataset", choices=sorted(DATASETS),
                       help="named dataset (see docs/datasets.md): " + ("default: the one the model was trained on" if
                            evaluating else "default: the model's own (mnist; svhn for svhn-mlp)"))  # fmt: skip
    group.add_argument("--data-dir", help="folder with the dataset's files (mnist: default the bundled copy; "
                                          "svhn/cifar10: default $EMBER_DATA/NAME or ~/.cache/ember/NAME)")  # fmt: skip
    group.add_argument("--download", action="store_true", help="download missing dataset files (mirrors, checksums)")
    group.add_argument("--data", help=".npz with x_train, y_train, x_test, y_test instead of a named dataset")
    group.add_argument("--layout", choices=LAYOUTS,
                       help="image layout of the data when the shape does not tell (channels first or last)")  # fmt: skip


def _train_parser(sub):
    from ..data.preprocess import KINDS
    from ..optim import OPTIMIZERS
    from ..optim.schedules import SCHEDULES

    p = sub.add_parser("train", help="train a network on MNIST (bundled) or an .npz dataset",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="schedules:\n  " + "\n  ".join(SCHEDULES.values()))  # fmt: skip
    p.add_argument("--model", default="mnist-mlp", help="network to train (see `ember models`); default mnist-mlp")
    p.add_argument("--epochs", type=POSITIVE_INT, help="passes over the training set (default: the model's, 10)")
    p.add_argument("--batch-size", type=POSITIVE_INT, help="minibatch size (default: the model's)")
    g = p.add_argument_group("optimizer")
    g.add_argument("--optimizer", default="sgd", choices=sorted(OPTIMIZERS), help="optim.X to use (default sgd)")
    g.add_argument("--lr", type=POSITIVE, help="learning rate (default: the model's for sgd/nag, else the optimizer's)")
    g.add_argument("--lr-decay", type=NON_NEGATIVE, help="Torch7 annealing lr / (1 + t * decay), t = steps (default: the model's, sgd)")
    g.add_argument("--momentum", type=NON_NEGATIVE, help="momentum for sgd/nag (sgd: dampening 0; default: the model's)")
    g.add_argument("--optim-config", default="", metavar="K=V,...",
                   help="other hyperparameters of the optimizer, e.g. beta2=0.99,epsilon=1e-6 or line_search=wolfe")  # fmt: skip
    g.add_argument("--schedule", help="learning-rate schedule, e.g. step:3:0.5, exp:0.9, cosine, plateau:0.5:1, inverse:1e-4")
    g = p.add_argument_group("regularization")
    g.add_argument("--weight-decay", type=NON_NEGATIVE, default=0.0, help="L2 weight decay (added to the gradient)")
    g.add_argument("--l1", type=NON_NEGATIVE, default=0.0, help="L1 weight decay")
    g.add_argument("--decay-from", type=COUNT, default=0, metavar="EPOCH",
                   help="switch L1/L2 on after this many epochs (the lecture: after a couple)")  # fmt: skip
    g.add_argument("--skip-biases", action="store_true", help="no weight decay on biases (1-D parameters)")
    g.add_argument("--max-norm", type=POSITIVE, help="cap each unit's incoming weight vector at this L2 norm")
    g.add_argument("--clip-grad", type=POSITIVE, help="scale the gradient down to at most this norm")
    g.add_argument("--dropout", type=_probability, default=0.0, help="dropout probability in the hidden layers")
    g = p.add_argument_group("data")
    _data_options(g)
    g.add_argument("--limit", type=POSITIVE_INT, help="use only the first N training samples (quick runs)")
    g.add_argument("--valid", type=NON_NEGATIVE, default=0, help="hold out N training samples (or a fraction < 1) for validation")
    g.add_argument("--preprocess", default="global", choices=KINDS,
                   help="input normalization fitted on the training set (default global: one mean and std)")  # fmt: skip
    g.add_argument("--early-stop", type=COUNT, default=0, metavar="EPOCHS",
                   help="stop after EPOCHS epochs without a better validation loss; keep the best")  # fmt: skip
    g = p.add_argument_group("files")
    g.add_argument("--save", help="write the model here after every epoch (atomic; pickle-free)")
    g.add_argument("--log", help="CSV log, one row per epoch (plot it with `ember plot`)")
    g.add_argument("--checkpoint", help="checkpoint file (default with --checkpoint-every/--resume: SAVE.ckpt or ember.ckpt)")
    g.add_argument("--checkpoint-every", type=COUNT, default=0, metavar="N", help="also checkpoint every N steps")
    g.add_argument("--resume", action="store_true", help="continue from the checkpoint if there is one")
    g.add_argument("--max-steps", type=POSITIVE_INT, help="stop (with a checkpoint) after this many steps in total")
    p.add_argument("--seed", type=COUNT, default=0, help="seed for initialisation, shuffling, validation split and dropout")
    p.add_argument("--threads", type=POSITIVE_INT, help="BLAS threads (default: all cores)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cpu (NumPy) or cuda (CuPy, needs a GPU)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"),
                   help="the model's floating-point type (float64: runs on 1 and N MPI ranks agree to ~1e-15)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, only the epoch summaries")
    p.add_argument("--grad-shards", type=POSITIVE_INT, default=0, metavar="S",
                   help="reproducible gradient: each batch as S chunks (a power of two), tree-summed on 1 BLAS "
                        "thread; float32 runs on 1 process and N ranks (N dividing S) agree bit for bit")
    p.add_argument("--filters", metavar="PNG", help="after training, draw the first layer's filters into this PNG")
    p.set_defaults(run=cmd_train)


def _plot_parser(sub):
    p = sub.add_parser("plot", help="training curves of a CSV log (from `ember train --log`) as PNG")
    p.add_argument("log", help="the CSV log")
    p.add_argument("-o", "--output", help="PNG file (default: the log's name with .png)")
    p.add_argument("--log-scale", action="store_true", help="logarithmic loss axis")
    p.set_defaults(run=cmd_plot)


def _eval_parser(sub):
    p = sub.add_parser("eval", help="test accuracy and confusion matrix of a saved model")
    p.add_argument("model_file")
    _data_options(p, evaluating=True)
    p.add_argument("--threads", type=POSITIVE_INT, help="BLAS threads (default: all cores)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="cpu (NumPy) or cuda (CuPy, needs a GPU)")
    p.add_argument("--confusion-png", help="also draw the confusion matrix to this PNG")
    p.add_argument("--input-shape", help="for a Torch7 .t7 model: one sample's shape as JSON, e.g. [1,28,28] (default [784])")
    p.set_defaults(run=cmd_eval)


def _convert_parser(sub):
    p = sub.add_parser("convert", help="convert a Torch7 .t7 model into an ember model file (nothing in it is run)")
    p.add_argument("source", help="the Torch7 file (torch.save, binary or ascii)")
    p.add_argument("target", help="the ember model file to write (safetensors layout; read it with ember.load)")
    p.add_argument("--partial", action="store_true",
                   help="if a class has no ember mapping, write the file's raw tensors by tree path instead of failing")  # fmt: skip
    p.set_defaults(run=cmd_convert)


def cmd_convert(args):
    from .. import io
    from ..t7 import UnmappedClassError, load_t7, raw_arrays, read_t7

    try:
        model = load_t7(args.source)
    except UnmappedClassError as error:
        if not args.partial:
            raise
        arrays = raw_arrays(read_t7(args.source))
        io.write_tensors(args.target, arrays, {"format": "torch7-raw", "source": str(args.source), "unmapped": str(error)})
        print(f"{args.source}: {error}\n-> {args.target}: {len(arrays)} raw tensors by tree path (read them with ember.io.read_tensors)")
        return 0
    io.save(model, args.target, metadata={"model": "torch7", "source": str(args.source)})
    print(f"{args.source} -> {args.target}: {sum(1 for _ in model.modules())} modules, "
          f"{sum(int(a.size) for _, a in model.named_arrays())} numbers")  # fmt: skip
    return 0


def _models_parser(sub):
    p = sub.add_parser("models", help="list the networks `ember train --model` knows")
    p.set_defaults(run=cmd_models)


def build_parser():
    """The ``ember`` command's argument parser (one sub-command per verb)."""
    from .._version import __version__

    parser = argparse.ArgumentParser(prog="ember", description="ember: module-based deep learning, the Torch7 nn way",
                                     epilog="exit status: 0 success, 1 failure, 2 usage error, 130 interrupted")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"ember {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    _convert_parser(sub)
    _models_parser(sub)
    _plot_parser(sub)
    from .manifold import add_manifold_parser

    add_manifold_parser(sub)
    from .pretrain import add_pretrain_parser

    add_pretrain_parser(sub)
    return parser


def _threads(args):
    if getattr(args, "threads", None):
        runtime.configure_threads(args.threads)


def _to_device(model, args):
    """Move ``model`` to the GPU for ``--device cuda`` (float32, like the CPU)."""
    if getattr(args, "device", "cpu") == "cuda":
        from ..backend import Backend

        model.to(Backend("cupy", model.backend.dtype))
    return model


def cmd_models(args):
    from ..models import MODELS

    for name, spec in sorted(MODELS.items()):
        print(f"{name:<14} input {'x'.join(map(str, spec.input_shape)):<9} {spec.description}")
    return 0


def parse_config(text):
    """``"a=1,b=x"`` -> ``{"a": 1, "b": "x"}`` (ints, floats and true/false converted)."""
    config = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--optim-config: expected KEY=VALUE, got {item!r}")
        value = value.strip()
        for convert in (int, float):
            try:
                value = convert(value)
                break
            except ValueError:
                pass
        config[key.strip()] = {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value
    return config


def _given(value, default):
    """``value`` unless the option was left out (None); 0 is a value, not "unset"."""
    return default if value is None else value


def cmd_train(args):
    import numpy as np

    from .. import nn
    from ..distributed import start_rank
    from ..models import get_model
    from ..nn.init import manual_seed
    from ..training import TrainOptions, fit, load_dataset, model_metadata

    _threads(args)
    group = start_rank(args.device)  # under mpirun/srun: rank 0 alone prints, one GPU per rank (ember.distributed)
    spec = get_model(args.model)
    d = spec.defaults
    sgd_like = args.optimizer in ("sgd", "nag")
    checkpoint = args.checkpoint
    if not checkpoint and (args.checkpoint_every or args.resume or args.max_steps):
        checkpoint = (args.save + ".ckpt") if args.save else "ember.ckpt"
    options = TrainOptions(
        epochs=_given(args.epochs, d.get("epochs", 10)), batch_size=_given(args.batch_size, d.get("batch_size", 64)),
        optimizer=args.optimizer, lr=args.lr if args.lr is not None else (d.get("lr") if sgd_like else None),
        lr_decay=args.lr_decay if args.lr_decay is not None else (d.get("lr_decay", 0.0) if args.optimizer == "sgd" else 0.0),
        momentum=args.momentum if args.momentum is not None else d.get("momentum"),
        optim_config=parse_config(args.optim_config), schedule=args.schedule, weight_decay=args.weight_decay,
        l1=args.l1, decay_from=args.decay_from, skip_biases=args.skip_biases, max_norm=args.max_norm,
        clip_grad=args.clip_grad, early_stop=args.early_stop, seed=args.seed, save=args.save, log=args.log,
        checkpoint=checkpoint, checkpoint_every=args.checkpoint_every, resume=args.resume, max_steps=args.max_steps,
        progress=not args.no_progress, grad_shards=args.grad_shards,
    )  # fmt: skip
    manual_seed(args.seed)
    valid = int(args.valid) if args.valid >= 1 else args.valid
    if args.data and args.dataset:
        raise ValueError("give either --data FILE.npz or --dataset NAME, not both")
    dataset = args.dataset or (None if args.data else d.get("dataset", "mnist"))
    data = load_dataset(spec.input_shape, args.data_dir, args.data, args.limit, valid, args.preprocess, args.seed,
                        dataset=dataset, layout=args.layout, download=args.download)  # fmt: skip
    options_kw = {"dropout": args.dropout} if args.dropout else {}
    model = spec.build(n_classes=data.n_classes, rng=np.random.default_rng(args.seed), **options_kw)
    model = _to_device(model.double() if args.dtype == "float64" else model, args)
    config = {k: v for k, v in options.optimizer_config().items() if k != "line_search"}
    split = f"{len(data.y_train)} train / " + (f"{len(data.y_valid)} valid / " if data.y_valid is not None else "")
    print(f"ember train: {args.model} on {data.name} ({split}{len(data.y_test)} test), {options.epochs} epochs, "
          f"batch {options.batch_size}, optim.{options.optimizer} {config}"
          + (f", schedule {options.schedule}" if options.schedule else ""), flush=True)  # fmt: skip
    print(model, flush=True)
    meta = {"model": args.model, "input_shape": json.dumps(list(spec.input_shape)), **model_metadata(data)}
    start = time.perf_counter()
    history = fit(model, nn.ClassNLLCriterion(), data, options, save_metadata=meta)
    if not history:
        return 0
    final = history[-1]
    if args.filters:
        from ..viz import filter_grid, first_layer_weight

        filter_grid(first_layer_weight(model), args.filters)
        print(f"first-layer filters drawn in {args.filters}")
    print(f"test accuracy {final['test_acc'] * 100:.2f}% after {len(history)} epochs "
          f"({time.perf_counter() - start:.1f}s)" + (f"; model saved to {args.save}" if args.save else ""))  # fmt: skip
    if group is not None:
        print(group.report())
    return 0


def cmd_eval(args):
    from .. import io, nn
    from ..data.preprocess import from_file
    from ..optim import ConfusionMatrix
    from ..training import evaluate, load_dataset

    if args.confusion_png:  # fail before the evaluation, not after it
        from ..optim.plot import pyplot

        pyplot()
    _threads(args)
    if str(args.model_file).endswith((".t7", ".net")):  # a Torch7 file: mapped, not run
        from ..t7 import load_t7

        model, meta = load_t7(args.model_file), {"model": "torch7", "input_shape": args.input_shape or "[784]"}
    else:
        model, meta = io.load(args.model_file, with_metadata=True)
        if not io.is_verified(meta):
            print(f"note: {args.model_file} carries no digest (written before ember stored one): its bytes are "
                  f"unverified; save it again to add one", file=sys.stderr)  # fmt: skip
    _to_device(model, args)
    input_shape = tuple(json.loads(meta.get("input_shape", "[784]")))
    from ..data.named import DATASETS

    trained_on = meta.get("dataset", "mnist")
    data_file = args.data or (None if args.dataset or trained_on in DATASETS else trained_on)
    dataset = None if data_file else (args.dataset or trained_on)
    data = load_dataset(input_shape, args.data_dir, data_file, preprocess="none", dataset=dataset,
                        layout=args.layout or meta.get("layout"), download=args.download)  # fmt: skip
    pre = None if meta.get("model") == "torch7" else from_file(io.load_extra(args.model_file), meta)
    if pre is None and "normalization" in meta:  # files written before preprocessing was stored as arrays
        from ..data import Standardizer

        norm = json.loads(meta["normalization"])
        pre = Standardizer.from_state(norm["per"], norm)
    x_test = data.x_test.with_preprocessor(pre)  # the raw images, preprocessed as training did, per batch
    loss, acc, pred = evaluate(model, nn.ClassNLLCriterion(), x_test, data.y_test)
    confusion = ConfusionMatrix(data.n_classes).batch_add(pred, data.y_test)
    print(f"{args.model_file}: {meta.get('model', 'model')} on {data.name} test set: "
          f"accuracy {acc * 100:.2f}% ({int(confusion.mat.trace())}/{len(pred)}), loss {loss:.4f}")  # fmt: skip
    print(confusion)
    if args.confusion_png:
        print(f"confusion matrix written to {confusion.save_png(args.confusion_png)}")
    return 0


def cmd_plot(args):
    from ..optim import plot_csv
    from ..optim.plot import pyplot

    pyplot()  # a missing matplotlib is reported before the log is read
    path = plot_csv(args.log, args.output, log_scale=args.log_scale)
    print(f"training curves written to {path}")
    return 0


def main(argv=None):
    """Run the ``ember`` command on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    # First, before anything imports NumPy: OpenBLAS reads its idle-spin setting only when it is loaded.
    runtime.configure_threads()
    args = build_parser().parse_args(argv)
    from ..errors import FormatError, ShapeError, TrainingError

    try:
        return args.run(args)
    except (TrainingError, FormatError, ShapeError, FileNotFoundError, ValueError, ImportError) as error:
        print(f"ember {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"ember {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
