"""``trainer.ema_decay``: an exponential moving average of the weights, evaluated beside the model
(metrics.json ``ema_test_acc``): torch's ``AveragedModel`` with ``get_ema_multi_avg_fn`` and
BatchNorm statistics averaged too, W_ema <- decay * W_ema + (1 - decay) * W after every optimizer
step (torch docs, ``swa_utils``; Polyak & Juditsky 1992, as timm's ``ModelEmaV3``).
"""

from __future__ import annotations

from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def build_ema(model: nn.Module, decay: float | None) -> AveragedModel | None:
    """The EMA of ``model``'s parameters and buffers with ``decay`` (a fraction in (0, 1); horizon
    about 1 / (1 - decay) steps), or None when ``decay`` is None. ``model`` must be on its device
    already, so the step counter stays on the CPU and an update does not wait for the GPU."""
    if decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(float(decay)), use_buffers=True)
