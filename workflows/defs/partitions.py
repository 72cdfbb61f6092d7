import dagster as dg

# Symbols are the scale-out axis: each symbol's chain is its own partition, and no
# asset of one partition reads another symbol's rows.
symbols_partitions = dg.DynamicPartitionsDefinition(name="symbols")
