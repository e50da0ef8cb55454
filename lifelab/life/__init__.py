"""The organism: events, environment, state, meaning, behaviour, policy, clock and the loop."""
