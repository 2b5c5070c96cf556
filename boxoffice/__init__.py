"""boxoffice: a movie-ticket booking engine for release-day rushes.

boxoffice.engine holds the rules (no HTTP), boxoffice.api the HTTP service, and
boxoffice/lua and boxoffice/sql the Redis scripts and the SQL migrations they run."""

from importlib import metadata

try:
    __version__ = metadata.version("boxoffice")
except metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+unknown"
