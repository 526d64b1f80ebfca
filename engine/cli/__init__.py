"""The command line: one module per ``python -m engine`` command (argument parsing, printing, files)."""
