"""Self-supervised handwriting verification (arXiv:2405.18320): pre-train an encoder on unlabelled handwriting
(the ResNet-VAE, VICReg, Barlow Twins, SimCLR, BYOL, SimSiam, MoCo), then verify writers with a small pair head
trained on few writer labels; offline on synthetic writers, on CEDAR AND with ``data_dir``."""

from kit.sslhv.assets import committed_config, committed_results, load_method, load_supervised
from kit.sslhv.config import RECIPES, SSLConfig, preset
from kit.sslhv.evaluation import PairHead, embedding_map, intra_inter_cosine, train_pair_head
from kit.sslhv.experiment import finetune, frozen_embeddings, frozen_head, load_data, pretrain, supervised
from kit.sslhv.losses import barlow_twins_loss, collapse_report, nt_xent_loss, vae_loss, vicreg_loss
from kit.sslhv.methods import METHODS, SSLMethod
from kit.sslhv.report import PAPER, format_table, label_efficiency, ordering, summary_rows
from kit.sslhv.views import HandwritingViews

__all__ = [
    "METHODS", "PAPER", "RECIPES", "HandwritingViews", "PairHead", "SSLConfig", "SSLMethod", "barlow_twins_loss",
    "collapse_report", "committed_config", "committed_results", "embedding_map", "finetune", "format_table",
    "frozen_embeddings", "frozen_head", "intra_inter_cosine", "label_efficiency", "load_data", "load_method",
    "load_supervised", "nt_xent_loss", "ordering", "preset", "pretrain", "summary_rows", "supervised",
    "train_pair_head", "vae_loss",
    "vicreg_loss",
]
