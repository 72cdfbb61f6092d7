"""Turn domain quality findings into Dagster asset check results."""

import dagster as dg

from workflows.data.quality import CANDLE_CHECKS, FEATURE_CHECKS, Finding
from workflows.reporting.markdown import frame_to_markdown

CHECK_DESCRIPTIONS = {
    "candles_schema": "pandera CandlesSchema: types, positive prices, volume >= 0, on-the-hour, unique hours, OHLC",
    "duplicate_hours": "Every (symbol, hour) is stored once",
    "ohlc_consistent": "low <= open, close <= high on every candle",
    "missing_hour_ratio": "Share of missing hours between first and last candle: warns above 1%, blocks above 10%",
    "features_schema": "pandera FeaturesSchema: every feature finite and within its range, unique hours",
    "segments_contiguous": "Feature rows of one segment are consecutive hours (no window spans a gap)",
}


def check_specs(asset_key: str, names: list[str]) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(name, asset=asset_key, blocking=True, description=CHECK_DESCRIPTIONS[name]) for name in names
    ]


CANDLE_CHECK_SPECS = check_specs("candles", CANDLE_CHECKS)
FEATURE_CHECK_SPECS = check_specs("features", FEATURE_CHECKS)


def to_check_result(finding: Finding) -> dg.AssetCheckResult:
    metadata: dict = {"summary": finding.summary}
    if finding.value is not None:
        metadata["value"] = float(finding.value)
    if finding.failing is not None and finding.failing.height:
        metadata["failing_rows"] = dg.MetadataValue.md(frame_to_markdown(finding.failing))
        metadata["failing_count"] = finding.failing.height
    severity = dg.AssetCheckSeverity.ERROR if finding.blocking else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(check_name=finding.name, passed=finding.passed, severity=severity, metadata=metadata)
