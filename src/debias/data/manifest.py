"""Manifests of the raw data a prepare rule reads: one line per file, its path, size and modification time.

Snakemake reruns a job when an input file is newer than its outputs, but a prepare rule reads thousands of images
that are not inputs (only the label files are): a corrupted or replaced image went unnoticed. Each raw dataset
therefore has a manifest, ``<results>/manifests/<dataset>.tsv``, listing every file the prepare reads (``path``,
``size`` in bytes, ``mtime_ns``; found with ``os.scandir``, nothing is hashed, so ~120k COCO images take seconds),
and the prepare rules take it as an input:

- while the DAG is built (the rules' input function ``manifest_input``), the manifest is computed from the disk and
  written, atomically, only when its text differs from the file's: when a raw file changed, was replaced, added or
  removed, the manifest becomes newer than the prepared data and what depends on it reruns; when nothing changed it
  is left alone (its mtime too), so nothing reruns;
- where the raw data do not exist yet but a job of this run writes them (the mini scale's ``*_embedded`` rules, the
  download rules), rule ``data_manifest`` writes the manifest after that job.

The config keys that choose the data (``mnist.source``, the roots, Wang's split files) are in the prepare rules'
params, so switching them reruns the prepare through Snakemake's params trigger.

Torch-free and snakemake-free: the workflow imports this module while it builds the DAG.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debias.io import write_text

HEADER = ("# raw files a prepare rule reads (debias.data.manifest): path, size in bytes, mtime in ns; "
          "a path that is not there has size 'missing'\n"
          "path\tsize\tmtime_ns\n")


@dataclass(frozen=True)
class Source:
    """A raw dataset: the files and folders its prepare rules read (folders: every file under them, hidden ones
    excepted), and ``anchors``, the files among them that must exist before it can be listed (the label files a
    download or ``*_embedded`` rule writes last; a manifest rule's inputs)."""
    name: str
    paths: tuple[str, ...]
    anchors: tuple[str, ...]


def sources(config: dict[str, Any]) -> dict[str, Source]:
    """Every raw dataset of ``config`` that a prepare rule reads, by name (the manifest's file name)."""
    from debias.data import coco_download, layout, mnist

    out = {}
    mnist_files = tuple(str(p) for p in mnist.raw_paths(config["mnist"]["root"]))
    out["mnist"] = Source("mnist", mnist_files, mnist_files)
    cm = config["colored_mnist"]
    if cm.get("source") == "authors":
        files = tuple(str(layout.colored_mnist_authors_file(cm["authors_dir"], float(s))) for s in cm["sigma2"])
        out["colored_mnist_authors"] = Source("colored_mnist_authors", files, files)
    ff = config["reweighting"]["fairface"]
    csvs = tuple(str(layout.fairface_label_csv(ff["root"], s)) for s in ("train", "val"))
    image_dir = ff["image_dirs"][str(ff["padding"])]
    out["fairface"] = Source("fairface", (*csvs, str(Path(ff["root"]) / image_dir)), csvs)
    wb = config.get("waterbirds")
    if wb is not None:
        meta = layout.waterbirds_metadata_file(wb["root"], wb["source"])
        out["waterbirds"] = Source("waterbirds", (str(meta.parent),), (str(meta),))
    coco = config.get("coco")
    if coco is not None:
        if coco["source"] == "embedded":
            labels = tuple(f"{coco['root']}/annotations/{name}" for name in coco_download.ANNOTATION_FILES)
        else:
            labels = tuple(str(p) for p in coco_download.label_files(coco))
        images = tuple(str(d) for d in coco_download.image_dirs(coco))
        out["coco"] = Source("coco", (*labels, *images), labels)
    return out


def _listing(path: str, out: list[str]) -> None:
    """Append a line per file at ``path`` (a file, or every file under a folder, by name; hidden names skipped)."""
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except NotADirectoryError:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            out.append(f"{path}\tmissing\t")
            return
        out.append(f"{path}\t{st.st_size}\t{st.st_mtime_ns}")
        return
    except FileNotFoundError:
        out.append(f"{path}\tmissing\t")
        return
    for entry in entries:
        if entry.name.startswith("."):  # e.g. an atomic write's temporary file, .DS_Store, a download's .archives
            continue
        if entry.is_dir():
            _listing(entry.path, out)
        else:
            st = entry.stat()
            out.append(f"{entry.path}\t{st.st_size}\t{st.st_mtime_ns}")


def manifest_text(source: Source) -> str:
    lines: list[str] = []
    for path in source.paths:
        _listing(path, lines)
    return HEADER + "".join(f"{line}\n" for line in lines)


def refresh(source: Source, target: str | Path) -> bool:
    """Write ``source``'s manifest to ``target`` if its text differs from the file's (or there is none); True if it
    wrote. An unchanged manifest keeps its modification time, so nothing downstream reruns."""
    text = manifest_text(source)
    try:
        if Path(target).read_text() == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    write_text(target, text)
    return True


def anchors(config: dict[str, Any], name: str) -> list[str]:
    return list(sources(config)[name].anchors)


def write(config: dict[str, Any], name: str, target: str | Path, log: str | Path | None = None) -> bool:
    """Rule data_manifest: the manifest of raw dataset ``name`` of ``config`` (and a line saying so in ``log``)."""
    changed = refresh(sources(config)[name], target)
    if log is not None:
        n = Path(target).read_text().count("\n") - HEADER.count("\n")
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(f"{target}: {n} files listed ({'written' if changed else 'unchanged'})\n")
    return changed


_refreshed: set[str] = set()  # manifests refreshed by this process (a DAG is built once per process)


def manifest_input(config: dict[str, Any], name: str, target: str, refresh_now: bool, written_by_a_rule: bool
                   ) -> list[str]:
    """A prepare rule's manifest input: ``[target]``, refreshed from the disk once per process when
    ``refresh_now`` (the main snakemake process, not a job's) and the dataset's anchors exist; ``[target]`` too when
    they do not exist yet but ``written_by_a_rule`` (a download or embedded rule of this run writes them, and rule
    data_manifest lists them after it); else ``[]``, so that the prepare rule itself reports its missing inputs."""
    source = sources(config).get(name)
    if source is None:
        return []
    if all(Path(a).exists() for a in source.anchors):
        if refresh_now and target not in _refreshed:
            refresh(source, target)
            _refreshed.add(target)
        return [target]
    return [target] if written_by_a_rule else []
