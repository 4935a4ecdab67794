"""Opt-in helpers for testing txsim models against references that txsim did not write.

Nothing here is imported by txsim itself; plugins' tests import it explicitly::

    from txsim_core.testing import ngspice
    if ngspice.available():
        currents = ngspice.simulate(g, v, r_source=100.0, r_sink=100.0, r_row=1.0, r_col=4.6)
"""
