"""The Python SDK over the REST API."""

from aistack.client.client import Client

__all__ = ["Client"]
