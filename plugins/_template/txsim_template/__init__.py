"""A template txsim plugin: a linear device given by its on and off resistances."""

from txsim_template.models import TemplateDevice, TemplateDeviceParams

__all__ = ["TemplateDevice", "TemplateDeviceParams"]
