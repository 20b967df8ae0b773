"""The Redis adapter: connections, key names, Lua scripts and the Cluster topology."""
