"""The local detector with other sets of painted defect kinds (no image of the benchmark's test
split): ``OneClassDetector(encoder="lite0")`` fitted as ``oneclass bench --methods patch-ocnn``
fits it, its discriminator and defect branch trained on defects of the kinds given instead of
``synthetic_defects.DEFECT_KINDS`` (nothing else changed). Image AUROC, mean over the folders'
categories, by category and by defect kind::

    python benchmarks/painted_kinds.py data/inspection-validation-{0,1,2,3} --seeds 0,1,2 \\
        --kinds "foreign,gain,smooth,noise,line" \\
        --out benchmarks/defaults/patch-gain-for-offset.md                          # ~16 min
    python benchmarks/painted_kinds.py data/inspection-other --seeds 0,1,2 \\
        --kinds "foreign,offset,smooth,noise,line;foreign,gain,smooth,noise,line" \\
        --out benchmarks/defaults/patch-gain-for-offset-other.md                    # ~5 min
"""

from __future__ import annotations

import contextlib
import functools

from _folders import categories_of, folder_arguments, product_variant, seeds_of, table_head, variant_rows
from _record import record  # benchmarks/: this folder is on sys.path when run

from oneclass.data import synthetic_defects
from oneclass.data.synthetic_defects import KNOWN_KINDS


@contextlib.contextmanager
def painting(kinds: tuple[str, ...]):
    """Within: the painting functions' default kinds are ``kinds`` (every caller in the detector
    leaves them to the default)."""
    functions = (synthetic_defects.synthetic_defects, synthetic_defects.painted_copies)
    saved = [f.__defaults__ for f in functions]
    for f in functions:
        f.__defaults__ = (kinds,)
    try:
        yield
    finally:
        for f, defaults in zip(functions, saved, strict=True):
            f.__defaults__ = defaults


def kind_sets(text: str) -> dict[str, tuple[str, ...]]:
    """``"a,b;c,d"`` -> {"a,b": ("a", "b"), "c,d": ("c", "d")}, every kind a known one."""
    sets = {}
    for part in text.split(";"):
        kinds = tuple(k.strip() for k in part.split(",") if k.strip())
        unknown = [k for k in kinds if k not in KNOWN_KINDS]
        if not kinds or unknown:
            raise SystemExit(f"--kinds: {part!r}: expected kinds among {', '.join(KNOWN_KINDS)}")
        sets[",".join(kinds)] = kinds
    return sets


def main(argv: list[str] | None = None) -> int:
    parser = folder_arguments(__doc__.splitlines()[0])
    parser.add_argument(
        "--kinds", required=True, help="sets of painted kinds: comma-separated, sets split by ;"
    )
    args = parser.parse_args(argv)
    sets = kind_sets(args.kinds)
    command = (
        f"Command: `python benchmarks/painted_kinds.py {' '.join(map(str, args.folders))} "
        f'--seeds {args.seeds} --kinds "{args.kinds}" --out {args.out}` (no image of the benchmark\'s '
        "test split)"
    )
    lines = table_head(command, "painted kinds", args.folders, categories_of(args.folders))

    variants = {
        name: product_variant(setting=functools.partial(painting, kinds)) for name, kinds in sets.items()
    }
    variant_rows(args.folders, seeds_of(args.seeds), variants, lines)
    record(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
