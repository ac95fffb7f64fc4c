"""Semantics-oriented face forgery detection (arXiv:2405.08487): the hierarchical label graph, its HEX loss and
Auto-lambda; work in progress (issue 16)."""

__status__ = "in progress: the label graph, its loss, Auto-lambda and the procedural faces are built; training, evaluation and notebooks are not"
