"""Rows of the hv_vlm verification table (arXiv:2407.21788) beside the Siamese model: the handcrafted baselines,
an examiner backend with its coverage and explanation faithfulness, and the table as text.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kit.hv_vlm.config import HVConfig
from kit.verification.baselines import fit_baseline, hog_features, raw_features
from kit.verification.metrics import decisions_metrics, pair_metrics

MAX_FIT_PAIRS = 20_000


def _fit_pairs(data, fraction: float, seed: int) -> np.ndarray:
    """Training pairs (the paper's pairing) of a ``fraction`` of the labelled writers, at most MAX_FIT_PAIRS."""
    from kit.data.handwriting import label_subset, verification_pairs
    from kit.verification.pairs import balanced_subset

    pairs = data.pairs["train"]
    if fraction < 1:
        train = data.writers["train"]
        keep = label_subset(train, min(1.0, max(fraction, 2 / len(train))), seed)  # pairs need 2 writers
        idx = np.flatnonzero(np.isin(data.writer_of, keep))
        local = verification_pairs(data.writer_of[idx], seed)
        pairs = np.column_stack([idx[local[:, 0]], idx[local[:, 1]], local[:, 2]])
    return balanced_subset(pairs, MAX_FIT_PAIRS, seed) if len(pairs) > MAX_FIT_PAIRS else pairs


def baseline_rows(cfg: HVConfig, data, progress: bool = True) -> list[dict[str, Any]]:
    """Rows {method, accuracy, precision, recall, f1, auc, coverage, n_pairs} of the handcrafted baselines on the
    test pairs, each fitted on training pairs only (HOG + logistic regression on 10 % and 100 % of the writers)."""
    if "train" not in data.pairs:
        raise ValueError("the baselines need labelled training writers to fit on")
    test = data.pairs["test"]
    feats = {"raw_cosine": raw_features(data.images), "hog": hog_features(data.images)}
    rows = []
    for name, label in (("raw_cosine", "raw-pixel cosine"), ("hog_cosine", "HOG cosine"),
                        ("hog_logreg", "HOG + logistic regression")):
        f = feats["raw_cosine"] if name == "raw_cosine" else feats["hog"]
        fractions = (0.1, 1.0) if name == "hog_logreg" else (1.0,)
        for frac in fractions:
            base = fit_baseline(name, data.images, _fit_pairs(data, frac, cfg.seed), features=f, seed=cfg.seed)
            s = base.scores(data.images, test, features=f)
            m = pair_metrics(s, test[:, 2], threshold=base.threshold)
            tag = f"{label}, {int(frac * 100)}% writers" if name == "hog_logreg" else label
            rows.append({"method": tag, **m, "coverage": 1.0, "n_pairs": len(test)})
    return rows


def examiner_pairs(data, n: int, seed: int = 0) -> np.ndarray:
    """``n`` balanced test pairs [n, 3] that an examiner answers (the same ones for every backend and seed)."""
    from kit.verification.pairs import balanced_subset

    return balanced_subset(data.pairs["test"], n, seed + 7)


def fit_offline_examiner(data, n_pairs: int = 2000, seed: int = 0):
    """Return an :class:`OfflineExaminer` fitted on (at most ``n_pairs`` balanced) training pairs."""
    from kit.hv_vlm.offline_examiner import OfflineExaminer
    from kit.verification.pairs import balanced_subset

    pairs = balanced_subset(data.pairs["train"], n_pairs, seed)
    return OfflineExaminer().fit(data.images[pairs[:, 0]], data.images[pairs[:, 1]], pairs[:, 2])


def examiner_rows(cfg: HVConfig, data, examiner: Any, model, n: int, progress: bool = True) -> dict[str, Any]:
    """The examiner's row (coverage beside accuracy), the Siamese model and HOG cosine on the same pairs, the
    verdicts, and (synthetic writers) the faithfulness of the explanations to the writers' true style gaps."""
    from kit.hv_vlm.examiner import decision_metrics, verify_pairs
    from kit.hv_vlm.experiment import siamese_scores

    if isinstance(examiner, str):
        if examiner != "offline":
            raise ValueError(f"examiner must be 'offline', a ChatBackend or None, got {examiner!r}")
        examiner = fit_offline_examiner(data, seed=cfg.seed)
    pairs = examiner_pairs(data, n, cfg.seed)
    verdicts = verify_pairs(examiner, data.images[pairs[:, 0]], data.images[pairs[:, 1]], progress=progress)
    decisions = [v.decision for v in verdicts]
    m = decision_metrics(decisions, pairs[:, 2])
    name = getattr(examiner, "name", type(examiner).__name__)
    row = {"method": f"examiner: {name}", "accuracy": m["accuracy"], "precision": m["precision"],
           "recall": m["recall"], "f1": m["f1"], "auc": None, "coverage": m["coverage"], "n_pairs": len(pairs),
           "accuracy_all": m["accuracy_all"]}
    same = decisions_metrics(siamese_scores(model, data, pairs) >= 0.5, pairs[:, 2])
    out: dict[str, Any] = {"examiner_row": row, "examiner_pairs": pairs, "verdicts": verdicts,
                           "same_pairs": {"Siamese ResNet-18": same}}
    hog = fit_baseline("hog_cosine", data.images, _fit_pairs(data, 1.0, cfg.seed),
                       features=hog_features(data.images), seed=cfg.seed)
    out["same_pairs"]["HOG cosine"] = decisions_metrics(hog.predict(data.images, pairs), pairs[:, 2])
    out["same_pairs"][row["method"]] = {k: row[k] for k in ("accuracy", "precision", "recall", "f1")}
    if data.population is not None:
        from kit.hv_vlm.faithfulness import faithfulness, faithfulness_summary

        pop, w = data.population, data.writer_of
        scored = [faithfulness(v.explanation, pop.style(int(w[i])), pop.style(int(w[j])))
                  for v, (i, j, _) in zip(verdicts, pairs)]
        out["faithfulness"] = faithfulness_summary(scored)
        out["faithfulness_rows"] = scored
    return out


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The evaluation's rows, the examiner's last (on its own subset of pairs)."""
    rows = list(result["rows"])
    if "examiner_row" in result:
        rows.append(result["examiner_row"])
    return rows


def format_table(rows: list[dict[str, Any]], keys=("accuracy", "precision", "recall", "f1", "coverage")) -> str:
    """A fixed-width text table of ``rows`` (None as '-')."""
    cell = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    width = max(len(r["method"]) for r in rows) + 2
    lines = ["method".ljust(width) + "".join(k[:9].rjust(10) for k in keys)]
    for r in rows:
        lines.append(r["method"].ljust(width) + "".join(cell(r.get(k)).rjust(10) for k in keys))
    return "\n".join(lines)


EXAMINERS = ("offline", "openai", "paligemma", "none")


def make_examiner(kind: str, *, openai_model: str = "gpt-4o", openai_cache: str | None = None,
                  paligemma: str | None = None, paligemma_adapter: str | None = None, device: str = "auto"):
    """Return the examiner ``kind`` names for :func:`kit.hv_vlm.experiment.evaluate`: "offline" (kept as the string:
    evaluate fits it on the run's training pairs), an OpenAIBackend (key from OPENAI_API_KEY, replies cached under
    ``openai_cache``), a PaliGemmaBackend (``paligemma`` model id or folder, optional LoRA adapter), or None."""
    if kind not in EXAMINERS:
        raise ValueError(f"examiner must be one of {EXAMINERS}, got {kind!r}")
    if kind == "offline":
        return "offline"
    if kind == "none":
        return None
    if kind == "openai":
        from kit.hv_vlm.openai_backend import OpenAIBackend

        return OpenAIBackend(openai_model, cache_dir=openai_cache)
    if not paligemma:
        raise ValueError("examiner='paligemma' needs paligemma= (a PaliGemma model id or folder)")
    from kit.hv_vlm.paligemma import PaliGemmaBackend, load_paligemma

    model, processor = load_paligemma(paligemma, adapter=paligemma_adapter, device=device)
    return PaliGemmaBackend(model, processor)
