"""The dunning rules (docs/RULES.md) as pure functions, one module per stage in flow order:
state, ingest, settlement, procedures, schedule, proposal run, run, review, activity run,
reversal, history, retention. No Kafka, I/O, clock or float."""
