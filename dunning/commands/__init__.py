"""The command groups of `dunning`, one module each, each with `register(subparsers)`.

`dunning.cli` assembles them (with `letters.cli`, `dunning.deadletters` and `audit.cli`,
which register their own groups) into the one parser.
"""
