"""txsim plugin: a successive-approximation ADC with capacitor mismatch and comparator errors."""

from txsim_adc_sar.models import SARADC, SARADCParams

__all__ = ["SARADC", "SARADCParams"]
