import warnings

import dagster as dg

from workflows.data.sources.candles import check_symbol
from workflows.ml.periods import FIRST_PERIOD, ForecastPeriod

# Symbols are the scale-out axis: each symbol's chain is its own partition, and no
# asset of one partition reads another symbol's rows.
SYMBOLS = "symbols"
symbols_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS)

# Follow upstream changes eagerly, but only once the upstream's blocking checks passed.
EAGER_AFTER_CHECKS = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()

# Forecast periods: calendar months (workflows/ml/periods.py says why a month). `end_offset=1` makes the
# month in progress a partition: its models train once it begins, its forecasts grow with its hours.
PERIOD, SYMBOL = "period", "symbol"
periods_partitions = dg.MonthlyPartitionsDefinition(start_date=FIRST_PERIOD, end_offset=1)
symbol_periods = dg.MultiPartitionsDefinition({SYMBOL: symbols_partitions, PERIOD: periods_partitions})

# Both mappings below are beta in Dagster 1.13 (chosen knowingly: the shape ARCHITECTURE.md asks for); their
# warnings are silenced here, once, rather than printed on every import.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.BetaWarning)
    # A period's model depends on its own previous period (warm start), of the same symbol; the first
    # period of a chain has none (allowed).
    PREVIOUS_PERIOD = dg.MultiPartitionMapping(
        {
            PERIOD: dg.DimensionPartitionMapping(
                PERIOD,
                dg.TimeWindowPartitionMapping(
                    start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
                ),
            ),
            SYMBOL: dg.DimensionPartitionMapping(SYMBOL, dg.IdentityPartitionMapping()),
        }
    )
    # A symbol's evaluation pools every period of that symbol.
    EVERY_PERIOD_OF_SYMBOL = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name=SYMBOL)


def period_key(symbol: str, period: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({SYMBOL: symbol, PERIOD: period})


def partition_symbol(context: dg.AssetExecutionContext) -> str:
    """The run's symbol: its partition key, checked against the one symbol rule before any asset builds a path
    or a query from it (`check_symbol`). Every partitioned asset reads its symbol through here."""
    try:
        return check_symbol(context.partition_key)
    except ValueError as exc:
        raise dg.Failure(f"partition key refused: {exc}") from None


def partition_symbol_period(context: dg.AssetExecutionContext) -> tuple[str, ForecastPeriod]:
    """A symbol x period run's symbol (checked against the one symbol rule, `check_symbol`) and forecast period."""
    key = context.partition_key
    if not isinstance(key, dg.MultiPartitionKey):
        raise dg.Failure(f"expected a symbol x period partition key, got {key!r}")
    try:
        return check_symbol(key.keys_by_dimension[SYMBOL]), ForecastPeriod.from_key(key.keys_by_dimension[PERIOD])
    except ValueError as exc:
        raise dg.Failure(f"partition key refused: {exc}") from None
