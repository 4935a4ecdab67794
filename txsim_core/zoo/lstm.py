"""LSTM sequence classifier."""

from __future__ import annotations

import torch
from torch import nn

from txsim_core.zoo._checks import check_positive_int


class LSTMClassifier(nn.Module):
    """Reads each image ``(C, H, W)`` as ``H`` steps of ``C * W`` features (row by row, the
    "sequential MNIST by rows" task) with an LSTM and classifies the last step's output.

    Module names: ``lstm`` (``torch.nn.LSTM``, batch first), ``fc`` (the classifier).

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: number of outputs (logits).
        hidden_size: features of the LSTM's hidden state.
        num_layers: stacked LSTM layers.
    """

    def __init__(
        self, input_shape: tuple[int, int, int], num_classes: int, hidden_size: int, num_layers: int
    ) -> None:
        super().__init__()
        channels, _, width = input_shape
        self.lstm = nn.LSTM(channels * width, hidden_size, num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        steps = x.permute(0, 2, 1, 3).reshape(batch, height, channels * width)
        output, _ = self.lstm(steps)
        return self.fc(output[:, -1])


def build_lstm(
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    hidden_size: int = 128,
    num_layers: int = 1,
) -> LSTMClassifier:
    """An LSTM (Hochreiter and Schmidhuber, Neural Computation 9(8), 1997) image classifier.

    The recurrent case of the TxSim paper (MLP/CNN/RNN, Table I): the image's rows are the time
    steps, ``torch.nn.LSTM(C * W, hidden_size, num_layers, batch_first=True)`` runs over them and
    a linear layer maps the last step's output to the logits. On MNIST (28 steps of 28 features)
    with the defaults it has 82,186 parameters.

    Module names: ``lstm``, ``fc``.

    Args:
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: number of outputs (logits).
        hidden_size: features of the LSTM's hidden state (a positive integer).
        num_layers: stacked LSTM layers (a positive integer).
    """
    return LSTMClassifier(
        input_shape,
        num_classes,
        check_positive_int(hidden_size, "hidden_size"),
        check_positive_int(num_layers, "num_layers"),
    )
