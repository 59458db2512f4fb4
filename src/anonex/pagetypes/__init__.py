"""``anonex page-types``: the kernel's ``tools/mm/page-types`` in Python, plus exclusivity.

The same options, the same output for the same input (rows, order, columns, flag names,
``-r`` expansion of overloaded flags), from live ``/proc`` files or saved copies of them;
and beyond page-types, ``--json`` and ``--exclusive`` (anonymous pages that are exclusive,
not exclusive, or unknown - per VMA with ``-p``).

Modules:

* :mod:`.names` - flag names, symbolic strings, ``-b``/``-a``/``-d`` spec parsing;
* :mod:`.decode` - numpy decoding: page-types' views of a word, PG_anon_exclusive states,
  per-page facts, flag summaries (the library API the live backend uses too);
* :mod:`.kpage` - chunked (and threaded) reading of kpageflags/kpagecount/kpagecgroup;
* :mod:`.proc` - maps, pagemap, ``PAGEMAP_SCAN``, a file's page cache;
* :mod:`.walk` - the PFN, process and file walks and what is done with each page;
* :mod:`.fmt` - list rows formatted with numpy;
* :mod:`.report` - text and JSON output; :mod:`.cli` - option parsing and :func:`main`.
"""
