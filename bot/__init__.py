"""imgbot: turns the images a team posts in Slack into searchable, reportable data."""

__version__ = "0.1.0"

__all__ = ["__version__"]
