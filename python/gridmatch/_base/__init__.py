"""The foundation every part of gridmatch may import, and which imports nothing of ours
but the extension: the exceptions, the parameter rules, the array checks and the thread
settings (``tools/check_layout.py`` enforces it)."""
