"""What runs inside the VM, and the builder of the guest image."""
