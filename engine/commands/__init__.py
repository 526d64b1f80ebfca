"""Command-line commands of ``python -m engine``; each module has ``main(argv) -> exit code``."""
