"""Semantics-oriented face forgery detection (arXiv:2405.08487): the hierarchical label graph, its HEX loss and
Auto-lambda; work in progress (issue 16)."""

__status__ = "in progress: the label graph, its loss, Auto-lambda, procedural faces, FFSC lists and training of SO and its baselines are built; the 3-seed protocol table, widgets and notebooks are not"
