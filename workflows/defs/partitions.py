import dagster as dg

from workflows.data.sources.candles import check_symbol

# Symbols are the scale-out axis: each symbol's chain is its own partition, and no
# asset of one partition reads another symbol's rows.
SYMBOLS = "symbols"
symbols_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS)

# Follow upstream changes eagerly, but only once the upstream's blocking checks passed.
EAGER_AFTER_CHECKS = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def partition_symbol(context: dg.AssetExecutionContext) -> str:
    """The run's symbol: its partition key, checked against the one symbol rule before any asset builds a path
    or a query from it (`check_symbol`). Every partitioned asset reads its symbol through here."""
    try:
        return check_symbol(context.partition_key)
    except ValueError as exc:
        raise dg.Failure(f"partition key refused: {exc}") from None
