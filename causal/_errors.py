class CausalError(Exception):
    """Input the estimators cannot use as given (missing columns, no treated units, …): one line, no traceback."""
