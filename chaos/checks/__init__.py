"""The verifier's checks, one module per view of the history (pure: history in, findings out)."""
