"""The local detector on images whose grey levels pass through a curve first (no image of the
benchmark's test split): ``OneClassDetector(encoder="lite0")`` fitted and scored on ``curve(images)``,
painting of synthetic defects included, as ``oneclass bench --methods patch-ocnn`` fits it.

Curves: ``none``; ``sqrt`` (x -> 255 sqrt(x / 255)); ``logA`` (x -> 255 log(1 + A x / 255) /
log(1 + A)), each rounded to a uint8 table; ``NAME-float``: the same curve, the images given to
the detector as float in [0, 1], not rounded. Image AUROC, mean over the folders' categories, by
category and by defect kind::

    python benchmarks/grey_curve.py data/inspection-validation-{0,1,2,3} --curves sqrt,log30 \\
        --seeds 0 --out benchmarks/defaults/patch-grey-curve.md                   # ~5 min a curve
    python benchmarks/grey_curve.py data/inspection-other --curves none,sqrt --seeds 0,1,2 \\
        --out benchmarks/defaults/patch-grey-curve-other.md                  # the check, ~5 min
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from _folders import categories_of, folder_arguments, product_variant, seeds_of, table_head, variant_rows
from _record import record  # benchmarks/: this folder is on sys.path when run


def curve_of(name: str) -> np.ndarray:
    """The curve ``name`` (without ``-float``) at the 256 grey levels, in [0, 1]."""
    x = np.arange(256) / 255.0
    if name == "none":
        return x
    if name == "sqrt":
        return np.sqrt(x)
    if name.startswith("log") and name[3:].replace(".", "", 1).isdigit():
        strength = float(name[3:])
        return np.log1p(strength * x) / np.log1p(strength)
    raise SystemExit(f"--curves: unknown curve {name!r}; expected none, sqrt or logA (A > 0), or NAME-float")


def curve_transform(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 images -> the same images on curve ``name``: through a rounded uint8 table, or as
    float32 images in [0, 1], not rounded, for ``NAME-float`` (the detector paints those on the
    same 0..255 scale)."""
    if name.endswith("-float"):
        levels = curve_of(name.removesuffix("-float")).astype(np.float32)
        return levels.__getitem__
    return np.clip(np.round(255 * curve_of(name)), 0, 255).astype(np.uint8).__getitem__


def main(argv: list[str] | None = None) -> int:
    parser = folder_arguments(__doc__.splitlines()[0])
    parser.add_argument("--curves", default="none,sqrt", help="comma-separated curves")
    args = parser.parse_args(argv)
    transforms = {name: curve_transform(name) for name in args.curves.split(",")}
    categories = categories_of(args.folders)
    command = (
        f"Command: `python benchmarks/grey_curve.py {' '.join(map(str, args.folders))} --curves "
        f"{args.curves} --seeds {args.seeds} --out {args.out}` (no image of the benchmark's test split)"
    )
    lines = table_head(command, "curve", args.folders, categories)

    variants = {name: product_variant(transform) for name, transform in transforms.items()}
    variant_rows(args.folders, seeds_of(args.seeds), variants, lines)
    record(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
