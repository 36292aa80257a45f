"""peernode: the daemon, storage, web page and CLI of a library's node."""

__version__ = "0.1.0"
