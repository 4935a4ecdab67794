"""The AAM solver passes txsim's conformance kit."""

from __future__ import annotations

from txsim_core.testing.conformance import SolverConformance


class TestAAMConformance(SolverConformance):
    name = "aam"
    bad_params = [({"r_col": -1.0}, "r_col")]
