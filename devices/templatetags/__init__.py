"""Template filters of the clinical pages."""
