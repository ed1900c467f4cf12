"""One module per plugin kind: the checks of its contract (rules.py names each rule)."""
