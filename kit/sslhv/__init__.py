"""Self-supervised handwriting verification (arXiv:2405.18320): SSL losses, encoders and handwriting views.

Work in progress (issue 15): the pre-training loop, the pair head, the evaluation table and the notebooks follow.
"""

__status__ = "in progress: losses, encoders and views are built; training, evaluation and notebooks are not"
