"""Anonymized releases of personal data (行政機関等匿名加工情報): synthetic data, profiles, the gate."""
