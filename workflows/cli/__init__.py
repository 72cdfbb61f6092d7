"""The command line (`workflows ...`) and its terminal progress."""
