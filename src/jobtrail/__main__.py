"""`python -m jobtrail` runs the CLI."""

from jobtrail.cli.main import main

main()
