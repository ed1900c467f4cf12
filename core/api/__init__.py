"""The daemon's HTTP/JSON API on a unix socket."""
