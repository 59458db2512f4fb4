"""What user space sees of anonymous pages: ``/proc/PID/pagemap``, ``/proc/kpageflags`` and
``/proc/kpagecount``, as constants and pure encode/decode functions (:mod:`.pagemap`,
:mod:`.kpageflags`). No I/O here: the live backend reads the files, the model encodes them."""
