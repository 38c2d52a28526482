"""The `jobtrail` command: Typer apps that parse, call the services and render."""
