"""The guest agent: runs inside the VM, on the guest's Python, standard library only.

In the guest this package is installed as the top-level package `agent` under
/hc, so it uses relative imports only; `protocol` is shared with the host.
"""
