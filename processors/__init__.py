"""The worker: the Faust app (`app`), its processing core (`core.Worker`) and one module per
agent (`ingest`, `control`, `proposal_run`, `activity_run`) over one write path (`store`),
one way out (`outbox`) and one error policy (`errors`). See docs/ARCHITECTURE.md."""
