"""Anomaly scores: a sentence's score is the mean token negative log-likelihood (nats, eos included) of the
decoder, teacher-forced from the sentence's own z; `roc_auc` measures how well it separates two sets.
Dimension letters: N sentences, B batch, T time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from sklearn import metrics
from torch import Tensor

from seqae.runs import TextRun, require_text


def sequence_nll(run: TextRun, sentences: Sequence[str], *, batch_size: int = 128) -> Tensor:
    """Mean token negative log-likelihood [N] (nats per target token, eos counted), teacher-forced from each
    sentence's own z."""
    return run.score(run.encode(sentences, batch_size=batch_size), sentences, batch_size=batch_size)


def _ranked(negatives: Sequence[float] | Tensor, positives: Sequence[float] | Tensor, name: str
            ) -> tuple[np.ndarray, np.ndarray]:
    """Labels (positive: 1) and dense ranks of the scores [n + m]; ranks, since sklearn rejects ±inf and ROC
    depends only on the order of the scores."""
    neg, pos = torch.as_tensor(negatives, dtype=torch.float64), torch.as_tensor(positives, dtype=torch.float64)
    if neg.numel() == 0 or pos.numel() == 0:
        raise ValueError(f"{name}: needs scores of both sets, got {neg.numel()} negatives, {pos.numel()} positives")
    both = torch.cat([neg.flatten(), pos.flatten()])  # (n + m,)
    if bool(torch.isnan(both).any()):
        raise ValueError(f"{name}: scores contain NaN")
    is_pos = np.concatenate([np.zeros(neg.numel()), np.ones(pos.numel())])
    return is_pos, torch.unique(both, return_inverse=True)[1].numpy()


def roc_auc(negatives: Sequence[float] | Tensor, positives: Sequence[float] | Tensor) -> float:
    """Area under the ROC curve of scores where higher means positive: P(pos > neg) + ½ P(pos = neg)."""
    return float(metrics.roc_auc_score(*_ranked(negatives, positives, "roc_auc")))


def roc_curve(negatives: Sequence[float] | Tensor, positives: Sequence[float] | Tensor) -> tuple[Tensor, Tensor]:
    """(false positive rate, true positive rate), each [P + 1] from (0, 0) to (1, 1), one point per distinct score."""
    fpr, tpr, _ = metrics.roc_curve(*_ranked(negatives, positives, "roc_curve"), drop_intermediate=False)
    return torch.from_numpy(fpr).double(), torch.from_numpy(tpr).double()


@dataclass(frozen=True, kw_only=True)
class AnomalyResult:
    scores: list[float]
    """Mean token NLL of each sentence of the data set (higher: more anomalous)."""
    ood_scores: list[float] | None
    """The same for the out-of-domain set, when one is given."""
    auc: float | None
    """ROC AUC of telling out-of-domain (positive) from in-domain sentences by score; None without one."""


def anomaly(run: TextRun, sentences: Sequence[str], ood: Sequence[str] | None = None) -> AnomalyResult:
    """Anomaly scores of `sentences` (and of `ood`, with the AUC of separating the two sets)."""
    require_text(run, "anomaly")
    scores = sequence_nll(run, sentences).tolist()
    if ood is None:
        return AnomalyResult(scores=scores, ood_scores=None, auc=None)
    ood_scores = sequence_nll(run, ood).tolist()
    return AnomalyResult(scores=scores, ood_scores=ood_scores, auc=roc_auc(scores, ood_scores))
