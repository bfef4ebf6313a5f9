"""Argument validation at the Python boundary: every check names the argument, its value
and what is allowed, before any code that runs with bounds checks off."""

def as_int(value, what):
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__} {value!r}")
    return value.__index__()
