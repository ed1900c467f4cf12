"""A third party's plugins for hypercontainer, installed like any distribution.

It lives in the project's tests to prove that the core can be extended
without touching it: nothing here is imported by hypercontainer itself.
"""
