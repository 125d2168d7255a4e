"""Command-line tools run from the project root (python -m scripts.NAME); never deployed."""
