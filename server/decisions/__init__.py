"""A validated event to a stored decision: who waits and what an unstored event is answered
(`decider`), the load-decide-commit round (`round`), the retry policy, the circuit breaker,
journey statistics as customers move, Identify's merge. May import `core`, `store`,
`protocol`."""
