"""The Celery app and the solve task. Import worker.app to send tasks without SymPy."""
