"""Auditor replay of `dunning.history`: rebuild and verify every account's dunning history.

- `chain`: the per-account hash chain, checked record by record (`ChainChecker`).
- `rebuild`: history records -> notices, reversals, rejections, item levels (`Rebuilder`).
- `replay`: reading the topic with progress, partition by partition (`Replay`, `verify`).
- `live`: the rebuilt state next to a worker's `GET /accounts/{id}/`.
- `report`: JSON lines, a table, CSV and JSON exports.
- `cli`: `dunning audit replay|verify|export` (`register(subparsers)`).
"""
