"""The harness around the kernel model: what runs a scenario on it and checks what it did.

``kernel/`` mirrors the kernel's mm and nothing else; this package is what a test rig
adds around it. :mod:`~anonex.harness.model` is the model backend (each scenario step as
the system calls and kernel paths it stands for, behind the
:class:`~anonex.observation.Backend` protocol), :mod:`~anonex.harness.oracle` says what
each process should read, and :mod:`~anonex.harness.invariants` checks the model's state
after every step.
"""
