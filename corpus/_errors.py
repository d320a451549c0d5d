class CorpusError(Exception):
    """Bad input a user can fix (missing column, unreadable file, empty glob): one line, no traceback."""
