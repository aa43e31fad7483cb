"""The console: a web page over the store, for people.

It lists and searches sessions, shows a session (messages, fork tree,
contributed context, instructions), draws a turn's hook calls on a time
axis, lists the audit trail and the plugins with each point's call order,
and follows new turns live. Two hosts serve it (:mod:`~turnkit.console.hosts`):
``turnkit serve`` at ``/console`` on the HTTP channel (where a message box
sends turns), and ``turnkit console``, read-only, from any store.

Modules: :mod:`~.reader` (the reads), :mod:`~.documents` (their JSON),
:mod:`~.waterfall` (a turn's layout), :mod:`~.api` (the JSON API),
:mod:`~.live` (the event stream), :mod:`~.export` (HTML pages),
:mod:`~.app` (the ASGI app), :mod:`~.plugins`; the page is ``static/``:
plain ES modules and one stylesheet, shipped in the wheel. Nothing here is
imported by the runtime unless a console is served or exported, so the
command line's start stays as fast as it was.
"""
