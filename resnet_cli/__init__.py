"""resnet-cli: the custom ResNet + One Cycle CIFAR-10 recipe as a Hydra command-line tool."""

import os as _os

# albumentations checks PyPI for a newer release on import; a training CLI must not phone home
# (and on offline machines the check only costs time).
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
