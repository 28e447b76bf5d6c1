"""``blindai-server``: the confidential inference server.

Installed with the ``server`` extra. The client never imports this package.
"""
