"""A site folder (``SITE/<label>/...``) through the engine's per-image path, to features.

Every film runs exactly what ``analyze()`` runs up to the decision: load, scope evidence, lung
field, the card's preprocessing, ``classifier.run`` (with the pooled features) and the scope
verdict. Films the engine cannot read, films out of scope and duplicates (the same model input
twice; in two label folders, every copy) are left out and counted.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ai.jobs import default_workers, error_text, is_cancelled, is_fatal
from ..ai.model import Classifier
from ..ai.pipeline import Prepared, conclude, ood_of, prepare, view_of
from ..errors import RadLensError
from ..io.fileio import printable
from ..io.listing import list_folder
from ..io.load import load_image
from .errors import AdaptError

Progress = Callable[[int, int], None]  # (films done, films in all)
CAM_SAMPLE = 48  # films whose model input is kept to rescale the adapted model's Grad-CAM


class SiteFolderError(AdaptError):
    """The site folder cannot be used (missing, no label folders, unknown folder names)."""


class Cancelled(RadLensError):
    """The user cancelled the adaptation; nothing was written."""


@dataclass
class SiteFilms:
    """The site's usable films: features [n, D], label indices, and what was left out."""

    features: np.ndarray
    label: np.ndarray
    base_logits: np.ndarray  # the parent model's logits for each film
    files: list[str]  # relative paths, for the user's own view (never written into the model)
    found: dict[str, int] = field(default_factory=dict)  # files per label folder
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> count
    left_out_files: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    # up to CAM_SAMPLE model inputs and the parent's call-CAM peaks on them (to rescale the adapted heatmaps)
    cam_inputs: np.ndarray | None = None
    cam_peaks: np.ndarray | None = None

    def counts(self, labels: tuple[str, ...]) -> dict[str, int]:
        c = Counter(int(v) for v in self.label)
        return {lab: c.get(i, 0) for i, lab in enumerate(labels)}


def label_folders(site: Path, labels: tuple[str, ...]) -> dict[str, Path]:
    """{label: folder} for the site's subfolders named by the model's labels (case-insensitive).
    SiteFolderError for a missing folder, none named by a label, or a folder named otherwise."""
    if not site.is_dir():
        raise SiteFolderError(f"site folder not found: {printable(str(site))}. Choose a folder with one subfolder "
                              f"per label ({', '.join(labels)}).")
    subs = sorted(p for p in site.iterdir() if p.is_dir() and not p.name.startswith("."))
    by_name = {lab.lower(): lab for lab in labels}
    unknown = [p.name for p in subs if p.name.lower() not in by_name]
    if unknown:
        raise SiteFolderError(f"{printable(str(site))} has folder(s) {', '.join(map(printable, unknown))} that name no "
                              f"label of the model; name each subfolder by a label ({', '.join(labels)}), e.g. "
                              f"{labels[0]}/, and move other films out.")
    found = {by_name[p.name.lower()]: p for p in subs}
    if not found:
        raise SiteFolderError(f"{printable(str(site))} has no label folders. Put the site's confirmed films in "
                              f"subfolders named by the model's labels ({', '.join(labels)}), e.g. {labels[0]}/.")
    return found


def _digest(x: np.ndarray) -> str:
    """The model input's identity: the same film saved twice gives the same input."""
    return hashlib.sha1(np.round(x * 64).astype(np.int32).tobytes()).hexdigest()


def read_site(site: Path, classifier: Classifier, progress: Progress | None = None,
              cancel: Callable[[], bool] | None = None, batch: int = 16) -> SiteFilms:
    """Every film under the label folders through the per-image path (see the module)."""
    labels = tuple(classifier.labels)
    folders = label_folders(site, labels)
    files: list[tuple[Path, int]] = []
    found: dict[str, int] = {}
    for lab, folder in folders.items():
        try:
            listed, _ = list_folder(folder)
        except RadLensError:  # an empty label folder: no films of that class
            listed = []
        found[lab] = len(listed)
        files += [(p, labels.index(lab)) for p in listed]
    left: Counter[str] = Counter()
    left_files: list[tuple[str, str]] = []
    feats, ys, logits, kept, digests = [], [], [], [], []
    cam_x, cam_peak = [], []

    def rel(p: Path) -> str:
        return printable(os.path.relpath(p, site))

    def prep(item: tuple[Path, int]) -> Prepared | str:
        try:
            return prepare(load_image(item[0]), classifier)
        except BaseException as e:  # noqa: BLE001 - one bad file never ends the run
            if is_fatal(e):
                raise
            return error_text(e, item[0])

    done = 0
    with ThreadPoolExecutor(max(1, min(2, default_workers()))) as ex:
        for i in range(0, len(files), batch):
            if cancel is not None and is_cancelled(cancel):
                raise Cancelled("site adaptation cancelled; nothing was written.")
            chunk = files[i : i + batch]
            preps = list(ex.map(prep, chunk))
            ok = [j for j, p in enumerate(preps) if isinstance(p, Prepared)]
            for j, p in enumerate(preps):
                if not isinstance(p, Prepared):
                    left["unreadable"] += 1
                    left_files.append((rel(chunk[j][0]), p))
            if ok:
                out = classifier.run(np.stack([preps[j].x for j in ok]), features=True)
                for k, j in enumerate(ok):
                    p = preps[j]
                    pred = conclude(p, classifier, out.logits[k], out.probs[k], out.cam[k], ood_of(out, k), view_of(out, k))
                    if not pred.in_scope:
                        left["out of scope"] += 1
                        left_files.append((rel(chunk[j][0]), f"out of scope: {pred.scope.reason}"))
                        continue
                    feats.append(out.features[k])
                    logits.append(out.logits[k])
                    ys.append(chunk[j][1])
                    kept.append(rel(chunk[j][0]))
                    digests.append(_digest(p.x))
                    if len(cam_x) < CAM_SAMPLE:
                        top = int(np.argmax(out.probs[k]))
                        cam_x.append(p.x)
                        cam_peak.append(float(np.max(out.cam[k][top])))
            done += len(chunk)
            if progress is not None:
                progress(done, len(files))
    keep = _dedupe(digests, ys, kept, left, left_files)
    d = len(feats[0]) if feats else 0
    return SiteFilms(
        features=np.asarray([feats[i] for i in keep], np.float32).reshape(len(keep), d),
        label=np.asarray([ys[i] for i in keep], np.int64),
        base_logits=np.asarray([logits[i] for i in keep], np.float32).reshape(len(keep), len(labels)),
        files=[kept[i] for i in keep], found=found, left_out=dict(left), left_out_files=left_files,
        cam_inputs=np.asarray(cam_x, np.float32) if cam_x else None,
        cam_peaks=np.asarray(cam_peak, np.float32) if cam_peak else None)


def _dedupe(digests: list[str], ys: list[int], names: list[str], left: Counter, left_files: list) -> list[int]:
    """Indices to keep: the first copy of each film; no copy of a film found under two labels."""
    labels_of: dict[str, set[int]] = {}
    for dg, y in zip(digests, ys, strict=True):
        labels_of.setdefault(dg, set()).add(y)
    seen: set[str] = set()
    keep = []
    for i, dg in enumerate(digests):
        if len(labels_of[dg]) > 1:
            left["in two label folders"] += 1
            left_files.append((names[i], "the same film is in two label folders"))
        elif dg in seen:
            left["duplicate"] += 1
            left_files.append((names[i], "a duplicate of another film"))
        else:
            seen.add(dg)
            keep.append(i)
    return keep
