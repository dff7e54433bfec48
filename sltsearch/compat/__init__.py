"""Every use of a dependency's private API, one module per library, each pinned by a test.

The next release of a dependency that changes what we rely on then breaks in one place, with a clear message.
"""
