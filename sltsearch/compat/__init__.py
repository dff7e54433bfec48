"""Compatibility modules: each dependency's private API used in one place, pinned by tests/test_compat_<library>.py."""
