"""The response cache (issue 10): a plug-in that answers repeated calls from a store.

    options.py   the ``cache`` block (route config, settings ``plugins``, key metadata)
    request.py   per-request headers and the cache key of a call
    entry.py     what is stored: one answer, its origin, usage and cost
    replay.py    a stored answer in the other form (a completion <-> its stream chunks)
    backends.py  where entries live: in-process LRU bounded in bytes, or Redis
    plugin.py    the ``cache`` plug-in and the runtime it shares (backend, counters)

See docs/cache.md for what is keyed, scoped, stored and reported.
"""
