"""HTTP blueprints, one per resource, plus problem+json error handling and the OpenAPI document."""
