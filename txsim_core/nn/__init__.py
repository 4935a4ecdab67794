"""Crossbar layers and the conversion of native networks."""

from txsim_core.nn.conv import CrossbarConv1d, CrossbarConv2d
from txsim_core.nn.convert import convert
from txsim_core.nn.linear import CrossbarLinear
from txsim_core.nn.lstm import CrossbarLSTM
from txsim_core.nn.summary import summary

__all__ = [
    "CrossbarConv1d",
    "CrossbarConv2d",
    "CrossbarLSTM",
    "CrossbarLinear",
    "convert",
    "summary",
]
