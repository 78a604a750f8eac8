"""The dashboard's server side: its routes under `/ui`, sessions, static files and live stream.

The pages themselves are static files (`static/`) that call the API as the CLI does, with the
session cookie and its CSRF header in place of a bearer token.
"""

from navarch.api.ui.routes import Dashboard

__all__ = ["Dashboard"]
