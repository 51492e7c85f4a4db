"""The pure core: correlation state, checks, verdicts, escalations. No Kafka, no clock."""
