"""The checked-in JSON Schema files match the models."""

from __future__ import annotations

from gpuaas_triage.schemas import jsonschema


def test_checked_in_schemas_match_the_models() -> None:
    """Every schema file equals what the models generate; run `triage schemas` after
    changing a model."""
    rendered = jsonschema.render()

    on_disk = {
        name: (jsonschema.SCHEMA_DIR / name).read_text()
        for name in rendered
        if (jsonschema.SCHEMA_DIR / name).exists()
    }

    assert on_disk == rendered, "schemas drifted: run `.venv/bin/triage schemas`"


def test_incident_schema_names_the_output_contract() -> None:
    """The incident schema lists the fields downstream systems key on."""
    schema = jsonschema.render()["incident-event.schema.json"]

    for field in ("incident_id", "failure_class", "category", "checks", "escalate",
                  "evidence", "lineage", "context"):
        assert f'"{field}"' in schema
