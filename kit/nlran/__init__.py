"""NL-RAN series: an explainable 3D residual attention non-local network for chest CT classification (Yang et al.,
arXiv:2408.04300): COVID-19 (NCP) vs common pneumonia (CP) vs normal, with the attention masks as heat maps.

Submodules (imported on use: the baselines and loaders import MONAI, which takes seconds to load):
``blocks`` (residual unit, soft-mask attention module, non-local block), ``models`` (NLRAN3d and its presets,
precise BatchNorm), ``baselines`` (MONAI 3D ResNet-18, ResNet + CBAM, ``build_model``), ``phantom`` (the offline
lung-phantom generator), ``data`` (CC-CCII and NIfTI loaders), ``explain`` (masks, CAM, Grad-CAM, occlusion and
their scores against lesion masks), ``metrics`` (AUC / precision / F1 and the paper's reported numbers),
``explore`` (slices, the lesion painter, non-local attention), ``config``, ``experiment`` (train, evaluate,
compare) and ``assets`` (the committed tiny models).
"""
