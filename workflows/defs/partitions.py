import dagster as dg

# Symbols are the scale-out axis: each symbol's chain is its own partition, and no
# asset of one partition reads another symbol's rows.
SYMBOLS = "symbols"
symbols_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS)

# Follow upstream changes eagerly, but only once the upstream's blocking checks passed.
EAGER_AFTER_CHECKS = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()
