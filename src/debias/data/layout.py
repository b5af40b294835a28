"""Where raw data sits on disk: file names only, no numpy or torch.

The workflow calls these while it builds the DAG (input files, the config's missing-data warnings), which on a
cluster runs in the driver environment (``envs/snakemake.yaml``: Snakemake without numpy or torch). The dataset
modules re-export them under their short names.
"""

from __future__ import annotations

from pathlib import Path

WATERBIRDS_LAYOUTS = {"group_dro": "waterbird_complete95_forest2water2", "wilds": "waterbirds_v1.0"}


def sigma2_tag(sigma2: float) -> str:
    """The three-decimal spelling used in file names (``0.020``, not ``0.02``), as the authors' files do."""
    return f"{sigma2:.3f}"


def colored_mnist_authors_file(directory: str | Path, sigma2: float) -> Path:
    """The authors' pickled colored MNIST of one σ² (config ``colored_mnist.authors_dir``)."""
    return Path(directory) / f"mnist_10color_jitter_var_{sigma2_tag(sigma2)}.npy"


def fairface_label_csv(root: str | Path, split: str) -> Path:
    return Path(root) / f"fairface_label_{split}.csv"


def waterbirds_metadata_file(root: str | Path, source: str) -> Path:
    """The metadata.csv of config ``waterbirds.source`` under ``root`` (the embedded mini data is written in the
    group_DRO tarball's layout)."""
    return Path(root) / WATERBIRDS_LAYOUTS["group_dro" if source == "embedded" else source] / "metadata.csv"
