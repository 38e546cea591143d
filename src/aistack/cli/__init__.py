"""The aistack command line (Typer + rich), one module per resource group."""
