"""``radlens-adapt SITE_FOLDER -o ADAPTED.onnx [--model BASE.onnx] [--name SITE]``.

Adapts a RadLens model to a site from the site's confirmed films (``SITE_FOLDER/<label>/``),
writes a NEW model file and prints the figures. Exit status: 0 written; 2 bad input (folder,
too few films, model without features or reference set, options); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..ai.card import DISCLAIMER
from ..ai.model import DEVICES, Classifier, default_model_path
from ..errors import RadLensError
from ..io.fileio import printable
from .fit import DEFAULT_FOLDS, DEFAULT_SEED, DEFAULT_SITE_SHARE, DEFAULT_STRENGTH, AdaptOptions
from .run import MIN_FILMS, MIN_PER_CLASS, adapt_site
from .site import Cancelled
from .summary import format_summary

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="radlens-adapt",
        description="Adapt a RadLens model to your site: refit its final layer on the site's confirmed films "
                    "(SITE_FOLDER/<label>/, e.g. normal/ and tuberculosis/; some labels may be missing) together with "
                    "the model's own training features, and write a NEW model file. The bundled model is never "
                    f"changed. {DISCLAIMER}.",
        epilog=f"At least {MIN_FILMS} usable films, and at least {MIN_PER_CLASS} in each label folder that has any. "
               "exit status: 0 the adapted model is written; 2 bad input (nothing written); 130 interrupted. "
               "Use it with: radlens-batch FOLDER -o report.csv --model ADAPTED.onnx",
    )
    p.add_argument("site", metavar="SITE_FOLDER", help="folder with one subfolder per label holding the site's films")
    p.add_argument("-o", "--output", required=True, metavar="ADAPTED.onnx", help="the adapted model to write (new file)")
    p.add_argument("--model", metavar="BASE.onnx", help=f"model to adapt (default: {default_model_path()})")
    p.add_argument("--name", metavar="SITE", help="the site's name, written in the model card (default: the folder name)")
    p.add_argument("--site-share", type=float, default=DEFAULT_SITE_SHARE, metavar="S",
                   help=f"the site films' share of each class's weight, for classes they have (default {DEFAULT_SITE_SHARE})")
    p.add_argument("--strength", type=float, default=DEFAULT_STRENGTH, metavar="L",
                   help=f"how strongly the new head is held to the base head (default {DEFAULT_STRENGTH})")
    p.add_argument("--folds", type=int, default=DEFAULT_FOLDS, metavar="K", help=f"cross-validation folds (default {DEFAULT_FOLDS})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"fold assignment seed (default {DEFAULT_SEED})")
    p.add_argument("--device", choices=DEVICES, default="auto", help="execution device (default: auto)")
    p.add_argument("--force", action="store_true", help="overwrite ADAPTED.onnx if it exists")
    return p


def _err(msg: str) -> None:
    print(f"radlens-adapt: error: {printable(msg)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")
    out = Path(args.output)
    if out.exists() and not args.force:
        _err(f"{out} exists; choose a new file name or pass --force to overwrite it.")
        return EXIT_BAD_INPUT
    model_path = Path(args.model) if args.model else default_model_path()
    try:
        classifier = Classifier(model_path, device=args.device)
    except RadLensError as e:
        _err(f"{e} Pass --model PATH to a RadLens .onnx model.")
        return EXIT_BAD_INPUT
    print(f"RadLens site adaptation - {DISCLAIMER}.")
    print(printable(f"Base model: {classifier.card.name} {classifier.card.version} ({model_path.name})"))
    opts = AdaptOptions(site_share=args.site_share, strength=args.strength, folds=args.folds, seed=args.seed)
    last = {"stage": ""}

    def progress(stage: str, done: int, total: int) -> None:
        if stage != last["stage"] or done == total or done % 64 == 0:
            print(f"  {'reading films' if stage == 'films' else 'fitting'}: {done}/{total}", file=sys.stderr, flush=True)
            last["stage"] = stage

    stop = threading.Event()
    try:
        result = adapt_site(args.site, classifier, out, args.name, opts, progress, stop.is_set, overwrite=args.force)
    except KeyboardInterrupt:
        _err("interrupted; nothing was written.")
        return EXIT_INTERRUPTED
    except Cancelled as e:
        _err(str(e))
        return EXIT_INTERRUPTED
    except RadLensError as e:
        _err(str(e))
        return EXIT_BAD_INPUT
    print(printable(format_summary(result.card, result.warnings, result.seconds)))
    print(printable(f"Wrote {out}. Use it with: radlens-batch FOLDER -o report.csv --model {out}"))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
