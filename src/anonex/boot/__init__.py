"""Booting other kernels: which image to boot and where it comes from.

``anonex check --boot IMAGE`` runs the scenario library inside a virtual machine on another
kernel. :mod:`anonex.boot.images` turns the ``IMAGE`` argument (a kernel image file, a kernel
build tree's ``bzImage``, or ``debian:NAME``) into a :class:`~anonex.boot.images.KernelImage`;
:mod:`anonex.boot.debian` fetches Debian's kernels into a cache; ``anonex kernels``
(:mod:`anonex.boot.kernels_cli`) lists and fetches them.
"""
