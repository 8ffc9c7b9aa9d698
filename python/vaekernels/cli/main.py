"""The ``vaekernels`` command line (also ``python -m vaekernels``).

    vaekernels                     the usage (this list)
    vaekernels tour                run the main kernels against NumPy, check them, print a table
    vaekernels demo [--out DIR]    train a VAE on the 8x8 digits, print ELBO/IWAE, write plots + summary.json
    vaekernels train --data digits|mnist:PATH|FILE.npy [--latent 50 --hidden 200,200 --epochs N
                     --batch-size B --lr LR --out DIR ...]
    vaekernels eval CHECKPOINT --data ... [--k 5000] [--gaps [--gap-points 10 --ais-steps 1000 --ais-chains 16]]
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

__all__ = ["main", "build_parser"]


# -------------------------------------------------------------------------------------------------
# argument types
# -------------------------------------------------------------------------------------------------
def _number(convert, ok, expected):
    """An argparse type: convert the text, then require ok(value); errors say what was expected."""
    def parse(text):
        try:
            v = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(v):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return v
    return parse


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _number(float, lambda v: 0 < v < float("inf"), "a finite positive number")


def _hidden(text):
    """'200,200' -> (200, 200); '' or 'none' -> () (a linear encoder and decoder)."""
    if text.strip().lower() in ("", "none"):
        return ()
    try:
        widths = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer widths such as 200,200 (or 'none'), got {text!r}") from None
    if any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"layer widths must be positive, got {text!r}")
    return widths


def _data_spec(text):
    """'digits', 'mnist:PATH' or a .npy file; validated early so typos give an argparse error."""
    if text == "digits":
        return ("digits", None)
    if text.startswith("mnist:"):
        path = text[len("mnist:"):]
        if not os.path.exists(path):
            raise argparse.ArgumentTypeError(f"no MNIST folder or file at {path!r}")
        return ("mnist", path)
    if text.endswith(".npy"):
        if not os.path.isfile(text):
            raise argparse.ArgumentTypeError(f"no such file: {text!r}")
        return ("npy", text)
    raise argparse.ArgumentTypeError(f"expected 'digits', 'mnist:PATH' or a FILE.npy, got {text!r}")


def _load_data(spec, split):
    """(X, y or None) for a parsed --data spec. split: 'train' or 'test' (digits: an 80/20 split)."""
    from .. import datasets
    kind, path = spec
    if kind == "digits":
        X, y = datasets.load_digits()
        X_tr, X_te, y_tr, y_te = datasets.train_test_split(X, y, test_fraction=0.2, seed=0)
        return (X_tr, y_tr) if split == "train" else (X_te, y_te)
    if kind == "mnist":
        return datasets.load_mnist(path, split)
    # Memory-mapped, never unpickled: a header that declares more than the file holds, or object arrays,
    # is a ValueError before anything is allocated; the copy below reads only what is really there.
    try:
        X = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as e:   # empty, truncated, not .npy (EOFError: zero bytes)
        raise ValueError(f"{path}: not a readable .npy array ({type(e).__name__}: {e})") from None
    if not isinstance(X, np.ndarray):               # an .npz archive under a .npy name
        X.close()
        raise ValueError(f"{path}: is an .npz archive, not an .npy array (save one array with np.save)")
    if X.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D array (rows, features), got shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected real numbers, got dtype {X.dtype}")
    return np.array(X, dtype=np.float64 if X.dtype == np.float64 else np.float32), None   # a copy, off the file


# -------------------------------------------------------------------------------------------------
# parser
# -------------------------------------------------------------------------------------------------
# eval --gaps settings (None on the command line: not given)
_GAP_DEFAULTS = {"gap_points": 10, "ais_steps": 1000, "ais_chains": 16, "gap_log_px": "ais"}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``vaekernels train: error: --lr: ...`` and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fail(command, message):
    """A runtime failure (not the user's arguments): one line on stderr, exit status 1."""
    print(f"vaekernels {command}: {message}", file=sys.stderr)
    return 1


def _writable_folder(parser, option, path):
    """Create ``path`` (a folder for outputs) or refuse it now, before any work: a usage error naming the
    option when it is a file, cannot be created or cannot be written."""
    if os.path.exists(path) and not os.path.isdir(path):
        parser.error(f"{option}: {path!r} exists and is not a folder")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        parser.error(f"{option}: cannot create the folder {path!r} ({e.strerror or e})")
    if not os.access(path, os.W_OK | os.X_OK):
        parser.error(f"{option}: the folder {path!r} is not writable")


def build_parser():
    p = _Parser(prog="vaekernels", description="Fused C++/CUDA kernels for VAEs and MCMC.")
    sub = p.add_subparsers(dest="command", metavar="{demo,train,eval,tour}")

    b = sub.add_parser("tour", help="run the main kernels against NumPy, check them and print a table")
    b.set_defaults(func=_cmd_tour, parser=b)

    d = sub.add_parser("demo", help="train a VAE on the 8x8 digits, print ELBO/IWAE, write plots and a summary")
    d.add_argument("--out", default="vaekernels-demo", help="output folder (default: %(default)s)")
    d.add_argument("--epochs", type=_positive_int, default=300, help="training epochs (default: %(default)s)")
    d.add_argument("--seed", type=_nonneg_int, default=0, help="seed of the model and data split")
    d.add_argument("--latent", type=_positive_int, default=2, help="latent dimension (default: %(default)s)")
    d.add_argument("--k", type=_positive_int, default=5000, help="IWAE samples per digit (default: %(default)s)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar")
    d.add_argument("--mcmc-points", type=_nonneg_int, default=4,
                   help="test digits whose posterior p(z|x) MCMC compares with q(z|x); 0 skips it (default: %(default)s)")
    d.add_argument("--gap-points", type=_nonneg_int, default=4,
                   help="test digits whose inference gaps (AIS, best Gaussian q*) are measured; 0 skips it "
                        "(default: %(default)s)")
    d.set_defaults(func=_cmd_demo, parser=d)

    t = sub.add_parser("train", help="train a VAE and save a checkpoint")
    t.add_argument("--data", type=_data_spec, required=True, help="digits | mnist:PATH | FILE.npy")
    t.add_argument("--latent", type=_positive_int, default=50, help="latent dimension (default: %(default)s)")
    t.add_argument("--hidden", type=_hidden, default=(200, 200),
                   help="comma-separated hidden widths, or 'none' (default: 200,200)")
    t.add_argument("--activation", default="tanh",
                   choices=["tanh", "relu", "sigmoid", "softplus", "elu", "linear"])
    t.add_argument("--likelihood", default="bernoulli", choices=["bernoulli", "gaussian"])
    t.add_argument("--binarize", default="auto", choices=["auto", "dynamic", "none"],
                   help="auto: dynamic binarisation for a Bernoulli model on non-binary data")
    t.add_argument("--epochs", type=_nonneg_int, default=10)
    t.add_argument("--batch-size", type=_positive_int, default=100)
    t.add_argument("--lr", type=_positive_float, default=1e-3)
    t.add_argument("--seed", type=_nonneg_int, default=0)
    t.add_argument("--validation", type=_nonneg_int, default=0,
                   help="hold out the last N training rows for a per-epoch validation ELBO")
    t.add_argument("--out", default="vaekernels-run", help="output folder: model.npz, history.json")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=_cmd_train, parser=t)

    e = sub.add_parser("eval", help="ELBO and IWAE(k) of a checkpoint on a data set")
    e.add_argument("checkpoint", help="a model.npz written by `vaekernels train` or VAE.save")
    e.add_argument("--data", type=_data_spec, required=True, help="digits | mnist:PATH | FILE.npy")
    e.add_argument("--split", default="test", choices=["train", "test"],
                   help="digits/mnist split to evaluate (default: %(default)s)")
    e.add_argument("--k", type=_positive_int, default=5000, help="IWAE samples (default: %(default)s)")
    e.add_argument("--limit", type=_positive_int, default=None, help="evaluate the first N rows only")
    e.add_argument("--binarize", default="auto", choices=["auto", "once", "none"],
                   help="auto: binarise non-binary data once (fixed seed) for a Bernoulli model")
    e.add_argument("--seed", type=_nonneg_int, default=0)
    e.add_argument("--batch-size", type=_positive_int, default=8192,
                   help="(sample, row) pairs per decoder pass in the IWAE (bounds memory)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--gaps", action="store_true",
                   help="also the inference gaps (approximation and amortisation, Cremer et al. 2018) of the "
                        "first --gap-points rows: log p(x) by AIS, the best Gaussian q* per row")
    # the --gaps options default to None so that giving one without --gaps is an error, not silently ignored
    e.add_argument("--gap-points", type=_positive_int, default=None,
                   help=f"rows for --gaps (default: {_GAP_DEFAULTS['gap_points']})")
    e.add_argument("--ais-steps", type=_positive_int, default=None,
                   help=f"AIS steps for --gaps (default: {_GAP_DEFAULTS['ais_steps']})")
    e.add_argument("--ais-chains", type=_positive_int, default=None,
                   help=f"AIS chains per row for --gaps (default: {_GAP_DEFAULTS['ais_chains']})")
    e.add_argument("--gap-log-px", default=None, choices=["ais", "iwae"],
                   help=f"log p(x) for --gaps: AIS, or the IWAE(k) estimates computed anyway (default: "
                        f"{_GAP_DEFAULTS['gap_log_px']})")
    e.set_defaults(func=_cmd_eval, parser=e)
    return p


# -------------------------------------------------------------------------------------------------
# commands
# -------------------------------------------------------------------------------------------------
def _cmd_tour(args, parser):
    from . import tour
    tour.kernel_demo()
    return 0


def _cmd_demo(args, parser):
    from .demo import run_demo, write_summary
    _writable_folder(parser, "--out", args.out)
    summary, model, data = run_demo(args.out, epochs=args.epochs, seed=args.seed, n_latent=args.latent, k=args.k,
                                    progress=not args.no_progress)
    if args.mcmc_points:
        # The yardstick for q(z|x): Metropolis-Hastings samples of the exact posterior p(z|x).
        from ..mcmc import demo_section
        section = demo_section(model, data["X_test_binary"], args.out, n_points=args.mcmc_points, seed=args.seed)
        for line in section.pop("summary"):
            print(line)
        summary["mcmc"] = section
        summary["files"]["mcmc"] = "mcmc_posterior.png"
        write_summary(args.out, summary)
        print(f"  wrote mcmc_posterior.png and updated summary.json in {args.out}")
    if args.gap_points:
        from .demo import gaps_section
        summary["inference_gaps"] = gaps_section(model, data["X_test_binary"], args.out, n_points=args.gap_points,
                                                 seed=args.seed, progress=not args.no_progress)
        summary["files"]["inference_gaps"] = "inference_gaps.png"
        write_summary(args.out, summary)
        print(f"  wrote inference_gaps.png and updated summary.json in {args.out}")
    return 0


def _is_binary(X):
    return bool(np.all((X == 0) | (X == 1)))


def _load_checked(parser, spec, split, unit_interval):
    """The --data rows, checked before any work with the library's data check (the same message as
    ``VAE.fit``): readable, 2-D, real, finite, and in [0, 1] where a Bernoulli model or binarisation needs it."""
    from ..datasets import check_data
    try:
        X, _ = _load_data(spec, split)
    except (ValueError, OSError) as err:
        parser.error(f"--data: {err}")
    try:
        return check_data(X, "--data", unit_interval=unit_interval)
    except ValueError as err:
        parser.error(str(err))


def _in_model_dtype(parser, X, model):
    """--data in the model's dtype; values beyond its range (float64 data for a float32 model) refused."""
    try:
        return model._check_batch(X, "--data")
    except (ValueError, TypeError) as err:
        parser.error(str(err))


def _cmd_train(args, parser):
    from ..vae import VAE
    X = _load_checked(parser, args.data, "train", unit_interval=args.likelihood == "bernoulli")
    if args.validation >= len(X):
        parser.error(f"--validation {args.validation} leaves no training rows (the data have {len(X)})")
    X_val = X[len(X) - args.validation:] if args.validation else None
    X_tr = X[:len(X) - args.validation]
    binarize = args.binarize
    if binarize == "auto":
        binarize = "dynamic" if args.likelihood == "bernoulli" and not _is_binary(X_tr) else "none"
    if binarize == "dynamic" and args.likelihood != "bernoulli":
        parser.error("--binarize dynamic needs the bernoulli likelihood")
    try:
        model = VAE(X.shape[1], args.latent, hidden=args.hidden, activation=args.activation,
                    likelihood=args.likelihood, seed=args.seed)
    except (ValueError, MemoryError) as err:
        parser.error(f"--hidden/--latent: {err or 'the model does not fit in memory'}")
    X_tr = _in_model_dtype(parser, X_tr, model)
    X_val = None if X_val is None else _in_model_dtype(parser, X_val, model)
    _writable_folder(parser, "--out", args.out)
    print(f"{model}\ntraining on {len(X_tr)} rows" + (f", validating on {len(X_val)}" if X_val is not None
                                                         else "") + f", binarisation: {binarize}")
    try:
        hist = model.fit(X_tr, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         validation_data=X_val, binarize=None if binarize == "none" else binarize,
                         progress=not args.no_progress)
    except ValueError as err:
        parser.error(str(err))
    except FloatingPointError:
        return _fail("train", f"training diverged at epoch {model.epoch + 1}, step {model.step + 1} (a non-finite "
                              f"loss or gradient); try a lower --lr (it was {args.lr:g})")
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()
                if k not in ("func", "parser")}
    try:
        ckpt = model.save(os.path.join(args.out, "model.npz"))
        with open(os.path.join(args.out, "history.json"), "w") as f:
            json.dump({"args": settings, "binarize": binarize, "history": hist}, f, indent=1, default=str)
    except OSError as err:
        return _fail("train", f"cannot write the results to {args.out!r}: {err}")
    for i, ep in enumerate(hist["epoch"]):
        line = f"epoch {ep + 1:4d}  ELBO {hist['elbo'][i]:9.3f}  KL {hist['kl'][i]:8.3f}"
        if "val_elbo" in hist:
            line += f"  validation ELBO {hist['val_elbo'][i]:9.3f}"
        print(line + f"  {hist['seconds'][i]:.2f} s")
    print(f"saved {ckpt}")
    return 0


def _cmd_eval(args, parser):
    from .. import datasets
    from ..vae import VAE
    given = [f"--{k.replace('_', '-')}" for k in _GAP_DEFAULTS if getattr(args, k) is not None]
    if given and not args.gaps:
        parser.error(f"{', '.join(given)} only apply with --gaps")
    for k, v in _GAP_DEFAULTS.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    try:
        model = VAE.load(args.checkpoint)
    except (ValueError, OSError) as err:
        parser.error(f"{err}")
    X = _load_checked(parser, args.data, args.split,
                      unit_interval=model.likelihood == "bernoulli" or args.binarize == "once")
    if X.shape[1] != model.n_inputs:
        parser.error(f"--data has {X.shape[1]} columns but the model expects {model.n_inputs}")
    if args.limit:
        X = X[:args.limit]
    X = _in_model_dtype(parser, X, model)
    binarized = False
    if args.binarize == "once" or (args.binarize == "auto" and model.likelihood == "bernoulli"
                                   and not _is_binary(X)):
        X = datasets.binarize(X, seed=args.seed + 1)
        binarized = True
    try:
        elbo = model.elbo(X, seed=args.seed)
        iwae = model.iwae(X, k=args.k, seed=args.seed, batch_size=args.batch_size)
    except ValueError as err:
        parser.error(str(err))
    n = len(X)
    res = {"checkpoint": args.checkpoint, "rows": n, "binarized_once": binarized, "k": args.k,
           "elbo": float(elbo.mean()), "elbo_se": float(elbo.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
           "iwae": float(iwae.mean()), "iwae_se": float(iwae.std(ddof=1) / np.sqrt(n)) if n > 1 else None}
    gaps = None
    if args.gaps:
        from ..vae.gaps import inference_gaps
        m = min(args.gap_points, n)
        extra = ({"log_px": iwae[:m], "log_px_label": f"IWAE, k={args.k}"} if args.gap_log_px == "iwae" else {})
        gaps = inference_gaps(model, X[:m], ais_steps=args.ais_steps, ais_chains=args.ais_chains, seed=args.seed,
                              progress=not args.json, **extra)
        res["gaps"] = gaps.to_dict()
    if args.json:
        print(json.dumps(res))
    else:
        se = lambda v: "" if v is None else f" +- {v:.3f}"  # noqa: E731
        print(f"{n} rows{' (binarised once)' if binarized else ''}:  ELBO {res['elbo']:.3f}{se(res['elbo_se'])}"
              f"  IWAE(k={args.k}) {res['iwae']:.3f}{se(res['iwae_se'])}  nats per row "
              f"(NLL estimate {-res['iwae']:.3f})")
        if gaps is not None:
            print(gaps.table())
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:   # as every command line does: say what it can do
        parser.print_usage()
        print("commands: demo, train, eval, tour (vaekernels COMMAND --help for each)")
        print("vaekernels: error: a command is required (demo, train, eval or tour)", file=sys.stderr)
        return 2
    try:
        return args.func(args, args.parser)    # usage errors name the subcommand: "vaekernels train: error: ..."
    except KeyboardInterrupt:                  # Ctrl-C: one line and the shell's status for SIGINT, no traceback
        print(f"vaekernels {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
