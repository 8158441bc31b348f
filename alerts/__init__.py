"""The alert engine (pure): when to prompt, which exercise, and the Prompt contract."""
