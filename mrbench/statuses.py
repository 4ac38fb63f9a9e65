"""A cell's status: what the store records, the runner retries and the report shows."""
OK, FAILED, SKIPPED, TIMEOUT = "ok", "failed", "skipped", "timeout"
NOT_APPLICABLE = "not_applicable"  # the solver is for another data family: final, never retried
FINAL = (OK, NOT_APPLICABLE)  # never retried
