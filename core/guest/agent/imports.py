"""Every standard-library module the agent uses, directly or lazily.

The guest image holds only the modules this file pulls in (with everything they
import in turn), so a module the agent starts using must be listed here; the
unit tests check that the agent imports nothing beyond this closure.
"""

import __future__  # every agent module starts with `from __future__ import annotations`

import base64
import collections
import collections.abc
import contextlib
import errno
import fcntl
import functools
import ipaddress
import json
import os
import queue
import re
import select
import shutil
import socket
import stat
import struct
import subprocess
import sys
import termios
import threading
import time
import traceback

MODULES = (
    __future__,
    base64,
    collections,
    collections.abc,
    contextlib,
    errno,
    fcntl,
    functools,
    ipaddress,
    json,
    os,
    queue,
    re,
    select,
    shutil,
    socket,
    stat,
    struct,
    subprocess,
    sys,
    termios,
    threading,
    time,
    traceback,
)
