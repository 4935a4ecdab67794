"""The template's device passes txsim's conformance kit: keep this file when you copy it."""

from __future__ import annotations

from txsim_core.testing.conformance import MappingConformance


class TestTemplateConformance(MappingConformance):
    name = "template"
    bad_params = [({"r_on": 1e6, "r_off": 1e5}, "r_off")]
