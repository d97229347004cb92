"""The deployed graph around the network: uint8 RGB in, class ids and confidence out.

Export traces it to ONNX and the torch backend runs it directly, so both compute the same
thing; the tensor names are in ``model.contract``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ExportWrapper(nn.Module):
    def __init__(self, model: nn.Module, with_logits: bool) -> None:
        super().__init__()
        self.model = model
        self.with_logits = with_logits

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # TensorRT's graph boundaries: a UINT8 input must feed a Cast to float directly (no
        # Transpose first), and only FP32/FP16 convert to UINT8, so the integer ArgMax goes
        # through float on its way out. Both casts are exact for pixel values and class ids.
        x = image.float().permute(0, 3, 1, 2)
        small = self.model(x)
        logits, labels = self._labels(small, x.shape[-2:])
        # Confidence: the winning class's softmax probability, taken where the network computes
        # (1/4 resolution; a full-size softmax would cost a quarter of the inference) and
        # enlarged like the logits; 255 = certain, rounded on the way to UINT8.
        prob = torch.softmax(small, 1).amax(1, keepdim=True)
        prob = F.interpolate(prob, size=x.shape[-2:], mode="bilinear", align_corners=False)
        confidence = (prob[:, 0] * 255.0 + 0.5).clamp(0.0, 255.0).to(torch.uint8)
        return (labels, confidence, logits) if self.with_logits else (labels, confidence)

    def labels(self, image: torch.Tensor) -> torch.Tensor:
        """The ``labels`` output alone: no softmax, for callers that do not want confidence."""
        x = image.float().permute(0, 3, 1, 2)
        return self._labels(self.model(x), x.shape[-2:])[1]

    @staticmethod
    def _labels(small: torch.Tensor, size: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        logits = F.interpolate(small, size=size, mode="bilinear", align_corners=False)
        return logits, logits.argmax(1).float().to(torch.uint8)
