"""Services write: every state change of a pump, session, command or alarm goes through these functions.

Split by sub-domain: `changes` (seq, events, emit after commit), `pumps`, `sessions` (and a pump's answer to an
order, `confirmations`), `commands`, `alarms`, `records` (dead letters, history, the bridge heartbeat), `accounts`.
"""
