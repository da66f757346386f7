"""Talking to upstreams: the pooled HTTP/1.1 client (`client`), one call to a channel and how its
failures map to errors (`call`), and fetching media a conversion needs (`media`)."""
