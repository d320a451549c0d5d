class JudgeError(Exception):
    """A judge run cannot start or continue as configured: one line, no traceback."""
