"""The pluggy markers of the ``turnkit`` project.

Plugin authors decorate their implementations with :data:`hookimpl`; the
contract (and services declaring their own points) use the kind decorators of
:mod:`turnkit_hookspecs.kinds`, which wrap :data:`hookspec`.
"""

import pluggy

PROJECT_NAME = "turnkit"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
