"""Attention read and tested: summaries, controls and faithfulness checks, the volatility model's view, and
the forecast periods' attention evidence."""
