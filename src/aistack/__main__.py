"""``python -m aistack`` = the ``aistack`` command."""

from aistack.cli.main import main

main()
