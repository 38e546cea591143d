"""The Python SDK over the REST API."""

from aistack.client.client import Client, LogText

__all__ = ["Client", "LogText"]
