"""The pure core: correlations, checks, verdicts, escalations; no Kafka or clock."""
