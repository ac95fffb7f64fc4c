"""Semantics-oriented face forgery detection (arXiv:2405.08487): the hierarchical label graph, its HEX loss and
Auto-lambda; work in progress (issue 16)."""

__status__ = "in progress: the label graph, its loss and Auto-lambda are built; data, training, evaluation and notebooks are not"
