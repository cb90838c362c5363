"""Published one-class AUROC numbers (%) to quote beside ours, with their sources."""

from __future__ import annotations

# (method, per-class AUROC or None, mean, source)
# Sources as ../shared/anchors.md traces them; "second-hand" where the number is not in the
# method's own paper (a number whose source cannot be traced is left out).
PUBLISHED: dict[str, list[tuple[str, list[float] | None, float, str]]] = {
    "mnist": [
        (
            "One-class Deep SVDD",
            [98.0, 99.7, 91.7, 91.9, 94.9, 88.5, 98.3, 94.6, 93.9, 96.5],
            94.8,
            "Ruff et al., ICML 2018, Table 1",
        ),
        (
            "GEOM",
            [98.2, 91.6, 99.4, 99.0, 99.1, 99.6, 99.9, 96.3, 97.2, 99.2],
            98.0,
            "second-hand: the GEOM paper (Golan & El-Yaniv, NeurIPS 2018) has no MNIST",
        ),
        ("ARNet", None, 98.3, "Ye et al., arXiv 1911.10676 / IEEE TMM 2022"),
        ("ESAD", None, 98.5, "second-hand: as tabled in AGAD (arXiv 2023), Tables 1-2"),
    ],
    "fashion-mnist": [
        ("Deep SVDD", None, 89.2, "Ruff et al., Deep SAD (ICLR 2020), gamma = 0 (std 6.2)"),
        (
            "GEOM",
            [99.4, 97.6, 91.1, 89.9, 92.1, 93.4, 83.3, 98.9, 90.8, 99.2],
            93.5,
            "Golan & El-Yaniv, NeurIPS 2018",
        ),
        ("ARNet", None, 93.9, "Ye et al., arXiv 1911.10676 / IEEE TMM 2022"),
        ("ESAD", None, 94.0, "second-hand: as tabled in AGAD (arXiv 2023), Tables 1-2"),
        (
            "CSI",
            None,
            94.2,
            "second-hand: Tack et al., NeurIPS 2020 (method)",
        ),
        ("DN2 (ImageNet-pretrained features, kNN)", None, 94.4, "Bergman et al. 2020"),
        ("PANDA (ImageNet-pretrained features)", None, 95.6, "Reiss et al., CVPR 2021"),
        (
            "Mean-Shifted Contrastive (ImageNet-pretrained)",
            None,
            94.2,
            "second-hand: Reiss & Hoshen, AAAI 2023 (method)",
        ),
    ],
}


def published_markdown(dataset: str) -> str:
    rows = PUBLISHED.get(dataset, [])
    if not rows:
        return ""
    lines = [
        f"Published numbers ({dataset}, AUROC %, one-class protocol):",
        "",
        "| method | " + " | ".join(str(c) for c in range(10)) + " | mean | source |",
        "|---" * 13 + "|",
    ]
    for name, per_class, mean, source in rows:
        cells = " | ".join(f"{v:.1f}" for v in per_class) if per_class else " | ".join([""] * 10)
        lines.append(f"| {name} | {cells} | {mean:.1f} | {source} |")
    return "\n".join(lines)
