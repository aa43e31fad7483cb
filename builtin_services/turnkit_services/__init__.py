"""turnkit's built-in services, registered through the ``turnkit.services`` entry-point group.

They depend only on the contract (``turnkit_hookspecs``), never on the runtime.
"""
