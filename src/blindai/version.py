"""Version numbers: the product's own, and the protocol version it speaks."""

__version__ = "1.0.0"

#: What ``GetServerInfo.version`` answers. Published 0.3 clients accept a version
#: whose first two dot-separated parts are ``0`` and ``3`` and which has at most
#: three parts, so this must stay of the form ``0.3.N``.
PROTOCOL_VERSION = "0.3.0"
