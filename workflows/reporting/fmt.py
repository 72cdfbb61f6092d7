"""Number formatting shared by the report's writers."""

ALPHA = 0.05


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:+.{digits}f}%"


def _p(p: float) -> str:
    return "n/a" if p != p else (f"{p:.3f}" if p >= 0.001 else f"{p:.1e}")
