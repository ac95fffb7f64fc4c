"""The hv_vlm series' record of arXiv:2407.21788's reported numbers."""

from __future__ import annotations

from kit.hv_vlm.metrics import PAPER_TABLE


def test_paper_table_holds_the_reported_numbers():
    by = {r["method"]: r for r in PAPER_TABLE}
    assert by["GPT-4o, 0-shot CoT"]["accuracy"] == 0.70 and by["PaliGemma, LoRA SFT"]["accuracy"] == 0.71
    assert by["ResNet-18, 100% writers"]["accuracy"] == 0.84 and by["ResNet-18, 10% writers"]["accuracy"] == 0.72
