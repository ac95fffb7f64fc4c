"""Numbers reported by the paper, kept apart from ours so notebooks can show them side by side, labelled.

FID of 50k samples at NFE 5 / 6 / 8 / 10, from the official repository's results figure (zju-pi/diff-sampler,
gits-main) for arXiv:2405.11326. Offline we do not compute FID (it needs Inception weights and real image models);
our tables measure the error to an exact ODE solution instead, and the full preset adds FID where it can.
"""

from __future__ import annotations

PAPER_NFES = (5, 6, 8, 10)

PAPER_FID = {
    "CIFAR-10": {
        "DDIM": (49.66, 35.62, 22.32, 15.69),
        "DDIM + GITS": (28.05, 21.04, 13.30, 10.37),
        "iPNDM": (13.59, 7.05, 3.69, 2.77),
        "iPNDM + GITS": (8.38, 4.88, 3.24, 2.49),
        "DPM-Solver++(3M)": (24.97, 11.99, 4.54, 3.00),
    },
    "FFHQ-64": {
        "DDIM": (43.93, 35.22, 24.39, 18.37),
        "DDIM + GITS": (29.80, 23.67, 16.60, 13.06),
        "iPNDM": (17.17, 10.03, 5.52, 3.98),
        "iPNDM + GITS": (11.22, 7.00, 4.52, 3.62),
        "DPM-Solver++(3M)": (22.51, 13.74, 6.04, 4.12),
    },
    "ImageNet-64": {
        "DDIM": (43.81, 34.03, 22.59, 16.72),
        "DDIM + GITS": (24.92, 19.54, 13.79, 10.83),
        "iPNDM": (18.99, 12.92, 7.20, 5.11),
        "iPNDM + GITS": (10.79, 8.43, 5.82, 4.48),
        "DPM-Solver++(3M)": (25.49, 15.06, 7.84, 5.67),
    },
    "LSUN Bedroom-256": {
        "DDIM": (34.34, 25.25, 15.71, 11.42),
        "DDIM + GITS": (22.04, 16.54, 11.20, 9.04),
        "iPNDM": (26.65, 20.73, 11.78, 5.57),
        "iPNDM + GITS": (15.85, 10.41, 7.31, 5.28),
        "DPM-Solver++(3M)": (23.15, 12.28, 7.44, 5.71),
    },
}


def paper_fid_rows() -> list[dict]:
    """Return the paper's FID table as rows {dataset, method, nfe, fid, source}, labelled as the paper's."""
    rows = []
    for dataset, methods in PAPER_FID.items():
        for method, values in methods.items():
            for nfe, fid in zip(PAPER_NFES, values):
                rows.append({"dataset": dataset, "method": method, "nfe": nfe, "fid": fid,
                             "source": "paper (arXiv:2405.11326, official repo figure)"})
    return rows
