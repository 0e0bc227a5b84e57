"""What a trained run is for, beyond reconstruction: each module one use, each through `seqae.runs.load_run`.

- `anomaly`: score sentences by the decoder's NLL given their own z; ROC AUC against an out-of-domain set.
- `search`: nearest sentences by cosine of z.
- `compress`: store sentences as (quantised) z and decode them back.
- `interpolate`: decode points between two sentences' z.
- `speech`: PNGs and Griffin-Lim audio of what a speech run rebuilds from z.
"""

from seqae.apps.anomaly import AnomalyResult, anomaly, roc_auc, roc_curve, sequence_nll  # noqa: F401
from seqae.apps.compress import compress, decompress, dequantize, model_fingerprint, quantize  # noqa: F401
from seqae.apps.interpolate import interpolate  # noqa: F401
from seqae.apps.search import search  # noqa: F401
from seqae.data.sentences import TextSet, read_texts  # noqa: F401

__all__ = ["AnomalyResult", "TextSet", "anomaly", "compress", "decompress", "dequantize", "interpolate",
           "model_fingerprint", "quantize", "read_texts", "roc_auc", "roc_curve", "search", "sequence_nll"]
