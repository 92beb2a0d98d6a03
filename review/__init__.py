"""The clerk's worklist (issue 16): `dunning review serve`, a web application over a small
local store materialized from the topics (runs, proposals, decisions, history, account
master data). It decides by publishing to `dunning.decisions`, never by writing state."""
