"""The alert engine (pure): when to prompt, which exercise, and the Prompt contract.

Public surface, for the service: `AlertEngine(person, AlertSettings, seed)` (alerts/engine.py)
with `feed(reading)`, `respond(id, action, minutes, now, rr=None)`, `finish()`, `status()`,
`to_dict()` / `AlertEngine.from_dict(state, settings)`; its outputs are `Prompt` (publish),
`Decision` (log/store: suppressed prompts, chronic findings, measured effects, responses) and
`DailySummary` (store; Influx `daily`).
"""
