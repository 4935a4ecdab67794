"""The crossbar version of ``torch.nn.LSTM``."""

from __future__ import annotations

from typing import cast

import torch

from txsim_core.crossbar.config import LayerConfig
from txsim_core.errors import ConfigError
from txsim_core.nn.base import ConfigLike
from txsim_core.nn.linear import CrossbarLinear


class CrossbarLSTM(torch.nn.Module):
    """A unidirectional multi-layer LSTM whose gate weights are on crossbar arrays.

    Each layer's input and recurrent weights form one matrix of ``input + hidden`` rows and
    ``4 * hidden`` columns (gates i, f, g, o, as in PyTorch), driven by ``[x_t, h_{t-1}]`` at every
    step; the gate non-linearities, the cell state and the biases (``bias_ih_l{k}`` and
    ``bias_hh_l{k}``, kept apart as in PyTorch so that training matches it) are digital.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout: as in ``torch.nn.LSTM``.
        config: the layer configuration, shared by all its layers.
        seed: seeds the layers (layer l uses ``seed + l``).
        name: the module's name in messages.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        config: ConfigLike = None,
        *,
        seed: int = 0,
        name: str = "",
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.batch_first, self.dropout = batch_first, dropout
        self.cells = torch.nn.ModuleList(
            CrossbarLinear(
                (input_size if layer == 0 else hidden_size) + hidden_size,
                4 * hidden_size,
                False,
                config,
                seed=seed + layer,
                name=f"{name}.cells.{layer}" if name else f"cells.{layer}",
            )
            for layer in range(num_layers)
        )
        self.bias = bias
        for layer in range(num_layers if bias else 0):
            for kind in ("ih", "hh"):
                bound = hidden_size**-0.5
                values = torch.empty(4 * hidden_size).uniform_(-bound, bound)
                self.register_parameter(f"bias_{kind}_l{layer}", torch.nn.Parameter(values))

    @classmethod
    def from_native(
        cls, module: torch.nn.LSTM, config: LayerConfig, *, seed: int, name: str
    ) -> CrossbarLSTM:
        """A crossbar LSTM with the weights and biases of a native one."""
        if module.bidirectional or module.proj_size:
            raise ConfigError(
                f"Layer {name!r}: expected a unidirectional LSTM without projections, but got "
                f"bidirectional={module.bidirectional}, proj_size={module.proj_size}. Keep it "
                "digital with a [[crossbar.layers]] rule (digital = true)."
            )
        lstm = cls(
            module.input_size,
            module.hidden_size,
            module.num_layers,
            module.bias,
            module.batch_first,
            module.dropout,
            config,
            seed=seed,
            name=name,
        )
        for layer, cell in enumerate(cast(list[CrossbarLinear], lstm.cells)):
            w_ih = getattr(module, f"weight_ih_l{layer}").detach()
            w_hh = getattr(module, f"weight_hh_l{layer}").detach()
            cell.crossbar.program(torch.cat([w_ih, w_hh], dim=1))
            for kind in ("ih", "hh") if module.bias else ():
                name_here = f"bias_{kind}_l{layer}"
                getattr(lstm, name_here).data.copy_(getattr(module, name_here).detach())
        return lstm

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Run the sequence; returns ``(output, (h_n, c_n))`` as ``torch.nn.LSTM`` does."""
        if self.batch_first:
            x = x.transpose(0, 1)
        batch = x.shape[1]
        if state is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            state = (zeros, zeros)
        h_last, c_last = [], []
        sequence = x
        for layer, cell in enumerate(self.cells):
            h, c = state[0][layer], state[1][layer]
            outputs = []
            for x_t in sequence:
                gates = cell(torch.cat([x_t, h], dim=-1))
                if self.bias:
                    gates = (
                        gates
                        + getattr(self, f"bias_ih_l{layer}")
                        + getattr(self, f"bias_hh_l{layer}")
                    )
                i, f, g, o = gates.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outputs.append(h)
            sequence = torch.stack(outputs)
            if self.dropout and self.training and layer < self.num_layers - 1:
                sequence = torch.nn.functional.dropout(sequence, self.dropout)
            h_last.append(h)
            c_last.append(c)
        output = sequence.transpose(0, 1) if self.batch_first else sequence
        return output, (torch.stack(h_last), torch.stack(c_last))
