"""Top-1 accuracies (%) reported for RLD (arXiv:2408.07703), kept apart from ours and labelled.

The tables were read from secondary transcriptions of the paper (the authors' repository issue thread and paper
notes), not from the PDF itself: ``PAPER_SOURCE`` says so wherever they are shown. TODO(paper): check each value
against the PDF.
"""

from __future__ import annotations

PAPER_SOURCE = "reported by the paper (arXiv:2408.07703), via secondary transcriptions: TODO(paper) check vs PDF"

# Table 2: CIFAR-100, same-family teacher -> student; columns KD, DKD, LA, RC, LR, RLD
SAME_FAMILY_METHODS = ("KD", "DKD", "LA", "RC", "LR", "RLD")
SAME_FAMILY = {
    "resnet32x4 -> resnet8x4": (73.33, 76.32, 73.46, 74.68, 76.06, 76.64),
    "vgg13 -> vgg8": (72.98, 74.68, 73.51, 73.37, 74.66, 74.93),
    "wrn_40_2 -> wrn_40_1": (73.54, 74.81, 73.75, 74.07, 74.42, 74.88),
    "resnet56 -> resnet20": (70.66, 71.97, 71.24, 71.63, 70.74, 72.00),
    "resnet110 -> resnet32": (73.08, 74.11, 73.39, 73.44, 73.52, 74.02),
    "resnet110 -> resnet20": (70.67, 71.06, 70.86, 71.41, 70.61, 71.67),
}
# wrn_40_2 -> wrn_16_2 is reported for KD, DKD and RLD only
SAME_FAMILY_PARTIAL = {"wrn_40_2 -> wrn_16_2": {"KD": 74.92, "DKD": 76.24, "RLD": 76.02}}

# Table 3: CIFAR-100, cross-family; columns KD, DKD, RLD
CROSS_FAMILY_METHODS = ("KD", "DKD", "RLD")
CROSS_FAMILY = {
    "resnet32x4 -> shufflenet_v2": (74.45, 77.07, 77.56),
    "resnet32x4 -> wrn_16_2": (74.90, 75.70, 76.14),
    "resnet32x4 -> wrn_40_2": (77.70, 78.46, 78.91),
    "wrn_40_2 -> resnet8x4": (73.97, 75.56, 76.12),
    "wrn_40_2 -> mobile_half": (68.36, 69.28, 69.75),
    "vgg13 -> mobile_half": (67.37, 69.71, 69.97),
    "ResNet50 -> mobile_half": (67.35, 70.35, 70.76),
}

# Table 4: ImageNet top-1; columns KD, DKD, RC, LR, RLD
IMAGENET_METHODS = ("KD", "DKD", "RC", "LR", "RLD")
IMAGENET = {
    "ResNet34 -> ResNet18": (71.03, 71.70, 71.59, 70.29, 71.91),
    "ResNet50 -> MobileNetV1": (70.50, 72.05, 71.86, 71.76, 72.75),
}

# Vanilla (cross-entropy) CIFAR-100 accuracies of the networks (CRD / RepDistiller README)
VANILLA = {"resnet56": 72.34, "resnet110": 74.31, "resnet32x4": 79.42, "wrn_40_2": 75.61, "vgg13": 74.64,
           "ResNet50": 79.34, "resnet20": 69.06, "resnet32": 71.14, "resnet8x4": 72.50, "wrn_16_2": 73.26,
           "wrn_40_1": 71.98, "vgg8": 70.36, "mobile_half": 64.60, "shufflenet_v2": 71.82}


def paper_table_markdown(table: str = "same_family") -> str:
    """Return one of the paper's tables ("same_family", "cross_family", "imagenet") as Markdown, labelled."""
    tables = {"same_family": (SAME_FAMILY_METHODS, SAME_FAMILY, "CIFAR-100, same-family pairs"),
              "cross_family": (CROSS_FAMILY_METHODS, CROSS_FAMILY, "CIFAR-100, cross-family pairs"),
              "imagenet": (IMAGENET_METHODS, IMAGENET, "ImageNet")}
    if table not in tables:
        raise ValueError(f"table must be one of {sorted(tables)}, got {table!r}")
    methods, rows, title = tables[table]
    lines = [f"**{title}, top-1 % — {PAPER_SOURCE}**", "", "| teacher -> student | " + " | ".join(methods) + " |",
             "|---|" + "---|" * len(methods)]
    for pair, vals in rows.items():
        best = max(vals)
        cells = [f"**{v:.2f}**" if v == best else f"{v:.2f}" for v in vals]
        lines.append(f"| {pair} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
