"""A module the pre-fork tests have the server import before it forks (see ``prefork_probe``)."""
