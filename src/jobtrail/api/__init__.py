"""The REST API, dashboard and /metrics: a FastAPI app built by create_app(settings)."""
