"""``trainer.ema_decay``: an exponential moving average of the weights, kept beside the trained
model and evaluated on the test set with it (metrics.json ``ema_test_acc``).

torch's :class:`~torch.optim.swa_utils.AveragedModel` with
:func:`~torch.optim.swa_utils.get_ema_multi_avg_fn` (one ``_foreach_lerp_`` per step; BatchNorm
statistics averaged too, ``use_buffers=True``): W_ema <- decay * W_ema + (1 - decay) * W after
every optimizer step, starting from the first step's weights (torch docs, ``swa_utils``; the EMA
of Polyak & Juditsky 1992 as timm's ``ModelEmaV3`` applies it).
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def build_ema(model: nn.Module, decay: float | None) -> AveragedModel | None:
    """The EMA of ``model``'s parameters and buffers with ``decay`` (a fraction in (0, 1); the
    horizon is about 1 / (1 - decay) steps), or None when ``decay`` is None (the spec: no EMA).

    Built from a model already on its device, so its step counter (``n_averaged``, tested on the
    host at every update) stays a CPU tensor and an update on CUDA does not wait for the GPU."""
    if decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(decay)), use_buffers=True)
