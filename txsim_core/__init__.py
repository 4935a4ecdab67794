"""txsim: simulate the training of deep neural networks on resistive-crossbar hardware.

The public API::

    import txsim_core
    txsim_core.list_models("adc")                   # registered models, with provenance
    adc = txsim_core.build_model("adc", "ideal")    # a ready model instance
    net = txsim_core.convert(net, "paper")          # Linear/Conv/LSTM layers on crossbars
    opt = txsim_core.CrossbarSGD(net.parameters(), lr=0.1)
"""

from txsim_core.errors import (
    ConfigError,
    PluginError,
    PluginLoadWarning,
    TxsimError,
    UnknownModelError,
)
from txsim_core.hookspecs import hookimpl
from txsim_core.nn import (
    CrossbarConv1d,
    CrossbarConv2d,
    CrossbarLinear,
    CrossbarLSTM,
    convert,
    summary,
)
from txsim_core.optim import CrossbarSGD
from txsim_core.registry import build_model, get_spec, list_models, reset_registry, resolve_model
from txsim_core.specs import Kind, ModelSpec

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "CrossbarConv1d",
    "CrossbarConv2d",
    "CrossbarLSTM",
    "CrossbarLinear",
    "CrossbarSGD",
    "Kind",
    "ModelSpec",
    "PluginError",
    "PluginLoadWarning",
    "TxsimError",
    "UnknownModelError",
    "__version__",
    "build_model",
    "convert",
    "get_spec",
    "hookimpl",
    "list_models",
    "reset_registry",
    "resolve_model",
    "summary",
]
