"""``Prediction``: the frozen result of the per-image job, and the decision rule, in one place.

The model card names its rule (``decision_rule``); ``decide`` is the only implementation:

- ``DECISION_RULE`` (models up to 2.x): the call is the top class; flags are the classes at or
  above their operating points.
- ``DECISION_RULE_COHERENT`` (3.0.0): the call is the most probable class; when it is a disease,
  flags are the diseases at or above their operating points; a normal call carries no flag.
- ``DECISION_RULE_MARGIN``: a disease is flagged at or above its operating point; the
  call is the flagged disease furthest above its operating point, as a fraction of the way from
  it to 1, else normal. A normal call carries no flag.

The probability panel, the study list, the corner text, the batch table, the CSV, the PDF, the
SR and the CLI summary all show ``call`` and ``flags`` from here, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..io.image import LoadedImage
from .cam import heatmap
from .card import DECISION_RULE, DECISION_RULE_COHERENT, DECISION_RULE_MARGIN, NORMAL_LABEL
from .scope import IN_SCOPE, Scope

__all__ = ["DECISION_RULE", "DECISION_RULE_COHERENT", "DECISION_RULE_MARGIN", "Prediction", "decide"]


def decide(labels: Sequence[str], probs: np.ndarray, operating_points: Mapping[str, float],
           rule: str = DECISION_RULE) -> tuple[str, tuple[str, ...]]:
    """(call, flags) for one image's calibrated probabilities by the card's ``rule``. Ties go to
    the first class. Flags are ordered by probability, highest first."""
    p = np.asarray(probs, np.float64)
    if rule == DECISION_RULE_MARGIN:
        margins = []
        for i, lab in enumerate(labels):
            if lab == NORMAL_LABEL or lab not in operating_points or p[i] < operating_points[lab]:
                continue
            op = float(operating_points[lab])
            margins.append(((p[i] - op) / (1.0 - op) if op < 1.0 else 0.0, float(p[i]), -i, lab))
        if not margins:
            return NORMAL_LABEL, ()
        call = max(margins)[3]
        return call, tuple(lab for _, _, _, lab in sorted(margins, key=lambda t: (-t[1], -t[2])))
    call = labels[int(np.argmax(p))]
    if rule == DECISION_RULE_COHERENT and call == NORMAL_LABEL:
        return call, ()
    flagged = [(float(p[i]), lab) for i, lab in enumerate(labels)
               if lab in operating_points and p[i] >= operating_points[lab]
               and not (rule == DECISION_RULE_COHERENT and lab == NORMAL_LABEL)]
    flags = tuple(lab for _, lab in sorted(flagged, key=lambda t: -t[0]))
    return call, flags


@dataclass(frozen=True)
class Prediction:
    path: str
    image: LoadedImage
    labels: tuple[str, ...]
    probs: np.ndarray  # [C], calibrated (temperature-scaled) softmax
    logits: np.ndarray  # [C]
    cam: np.ndarray  # [C, h, w], raw Grad-CAM maps at the model's last conv layer
    call: str  # the decision by the card's rule (``decide``); "" when the image is out of scope (no verdict)
    flags: tuple[str, ...]  # what ``decide`` flags, highest probability first; () out of scope
    model_name: str
    model_version: str
    model_sha256: str
    operating_points: dict[str, float]
    input_size: tuple[int, int]
    resize: str
    box: tuple[int, int, int, int] | None = None  # image region the model saw (top, left, h, w)
    lungs: object | None = None  # engine.ai.lungs.LungField when the model's card uses one
    notes: tuple[str, ...] = ()
    scope: Scope = IN_SCOPE
    decision_rule: str = DECISION_RULE  # the card's rule that made ``call`` and ``flags``

    @property
    def in_scope(self) -> bool:
        return self.scope.in_scope

    @property
    def top_index(self) -> int:
        """The class of the call (what every view shows first and the heatmap's default class);
        the highest probability when there is no call (out of scope). Under the 3.0 rule the call
        need not be the most probable class."""
        if self.call and self.call in self.labels:
            return self.labels.index(self.call)
        return int(np.argmax(self.probs))

    @property
    def top_label(self) -> str:
        return self.labels[self.top_index]

    @property
    def top_prob(self) -> float:
        return float(self.probs[self.top_index])

    def ranked(self) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs, kind="stable")
        return [(self.labels[i], float(self.probs[i])) for i in order]

    def above_operating_point(self) -> list[str]:
        """Labels whose probability reaches the class's operating point (the flags)."""
        return list(self.flags)

    def heatmap(self, class_index: int | None = None, *, scale: float | None = None) -> np.ndarray:
        """Grad-CAM of a class (the top class by default) at image size, in [0, 1].
        ``scale``: CAM units shown as 1.0, the same for every class (``engine.ai.cam.cam_scale``);
        None: the class's own peak."""
        idx = self.top_index if class_index is None else class_index
        return heatmap(self.cam, idx, self.image.shape, self.input_size, self.resize, box=self.box, scale=scale)
